"""How a job's processes are placed, sized, started and stopped: the World, the rendezvous and thread
sharing (`distributed`), the stop protocol on signals (`stopping`), SLURM (`slurm`).
"""
