"""realtime-adain: real-time arbitrary style transfer (AdaIN) for images, video files, cameras and streams.

The public API: `Stylizer` and `StyleControls` (engine), `UserError` (errors).
"""

from .engine import StyleControls, Stylizer
from .errors import UserError

__all__ = ["Stylizer", "StyleControls", "UserError"]
