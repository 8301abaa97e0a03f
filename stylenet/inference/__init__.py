"""Using a network: the Python API (`stylizer`), files, folders, GIFs and videos, tiles, exported files and the
onnxruntime backend."""
