"""stylenet: fast feed-forward neural style transfer."""

from stylenet.inference.stylizer import Stylizer, load

__all__ = ["Stylizer", "load"]
__version__ = "0.1.0"
