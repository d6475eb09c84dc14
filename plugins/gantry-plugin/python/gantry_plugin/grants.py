"""What a plugin may read beyond its input: the environment variables and directories the host
grants it (``env`` and ``read_only_dirs`` under ``[plugins.settings.NAME]`` in ``gantry.toml``).

Inside the sandbox anything else is simply absent (WASI hands a component its environment whole
and resolves a path outside every granted directory inside the component, so the host never sees
the read), and ``os.environ.get`` or ``open`` can't say why. These say which grant would allow
the read, as the Rust SDK's ``gantry_plugin::grants`` does::

    from gantry_plugin import grants
    token = grants.env("my-policy", "LAB_QUOTA_TOKEN")
    table = grants.read_text("my-policy", "/etc/gantry/weights.csv")
"""

import os


class NotGranted(Exception):
    """A read the host does not grant; the message names the grant that would allow it."""


def env(plugin, name):
    """The value of ``name``, if the host grants it to ``plugin`` (the name its ``info`` reports)."""
    value = os.environ.get(name)
    if value is None:
        raise NotGranted(
            f"{plugin} reads the environment variable {name}, which the host does not grant it: "
            f'give it a value in env = {{ {name} = "..." }} under [plugins.settings.{plugin}] in gantry.toml'
        )
    return value


def read_text(plugin, path):
    """The text of the file at ``path``, if it lies under a directory the host grants ``plugin``."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise NotGranted(
            f"{plugin} cannot read {path} ({e.strerror or e}): a plugin reads only under the directories "
            f"granted as read_only_dirs under [plugins.settings.{plugin}] in gantry.toml"
        ) from e
