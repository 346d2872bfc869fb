"""Task codecs: request bodies to tensors and tensors to answers. One module per task."""

from handlers.tasks.base import TaskCodec, make_codec

__all__ = ["TaskCodec", "make_codec"]
