"""brick: os-brick's initiator API over brick's Rust library.

Change one import and keep the code: ``from brick.initiator import connector`` for
``from os_brick.initiator import connector``, ``from brick import exception`` for
``from os_brick import exception``. See the README's "Python" section.
"""

from brick._native import __version__

__all__ = ["__version__"]
