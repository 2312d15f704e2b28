"""telegram-core's public surface is exactly what its ``__init__`` exports."""

import telegram_core


def test_public_surface_is_exactly_what_init_exports() -> None:
    exported = {name for name in dir(telegram_core) if not name.startswith("_")}
    assert exported == set(telegram_core.__all__)
    for name in telegram_core.__all__:
        assert getattr(telegram_core, name) is not None
