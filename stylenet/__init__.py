"""stylenet: fast feed-forward neural style transfer."""

from stylenet.inference.loading import load
from stylenet.inference.stylizer import Stylizer

__all__ = ["Stylizer", "load"]
__version__ = "0.1.0"
