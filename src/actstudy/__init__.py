"""actstudy: measure why deep sigmoid/tanh networks train badly and ReLU networks don't."""

__version__ = "0.1.0"
