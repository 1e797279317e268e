"""echo: returns the image unchanged through pgplugin.py and NumPy (the plugin environment), so
`pgbench editor` measures the protocol's own cost per frame: files, IPC, checks."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Nodes", "plugins"))
import pgplugin  # noqa: E402


def edit(image, params, seed, source=None, mask=None):
    return image


pgplugin.serve(name="echo", version="1.0.0", edit=edit)
