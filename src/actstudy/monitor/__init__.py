"""Per-layer measurement on monitored steps: the gradient-flow monitor (`gradient_flow`), each
activation's facts (`activation_facts`), the histograms and their artifact (`histograms`,
`histogram_file`), the loss's sharpness (`sharpness`). Import-light: importing the package loads nothing.
"""
