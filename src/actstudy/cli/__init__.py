"""Every way a process starts: the training command (`train`), the ranks rank 0 starts (`worker`)."""
