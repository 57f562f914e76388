"""The output head: how the last layer's scores become the training loss (`model.head`).

The network's last layer is linear in both heads; the head only says how its scores are read. Accuracy is
the argmax of the scores in both (sigmoid is monotone, so it picks the same class as its outputs would).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor
from torch.nn import functional as F

Loss = Callable[[Tensor, Tensor], Tensor]  # (scores (N, classes), labels (N,)) -> 0-d loss


def softmax_cross_entropy(scores: Tensor, labels: Tensor) -> Tensor:
    """Return the mean over the batch of -ln softmax(scores)[label]: the usual classifier loss."""
    return F.cross_entropy(scores, labels)


def sigmoid_cross_entropy(scores: Tensor, labels: Tensor) -> Tensor:
    """Return Nielsen's cross-entropy of sigmoid outputs (his network2 `CrossEntropyCost`), batch mean.

    Per example: -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] with a = sigmoid(scores) and y the one-hot
    label, summed over the outputs; then averaged over the batch, as network2's update averages its
    per-example gradients. So the gradient at output j is (a_j - y_j) / batch size: his delta, averaged.
    """
    targets = F.one_hot(labels, scores.shape[1]).to(scores.dtype)
    per_output = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    return per_output.sum(dim=1).mean()


#: `model.head` name -> its loss.
HEADS: dict[str, Loss] = {"softmax": softmax_cross_entropy, "sigmoid": sigmoid_cross_entropy}
