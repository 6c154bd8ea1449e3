"""The generated typed methods are what the table gives, and cover the fake server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from sippet_async import _typed_methods
from sippet_async.testing._actions import ACTIONS

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _generator() -> ModuleType:
    """Import scripts/generate_typed_methods.py by path (scripts/ is not a package)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("_generate_typed_methods",
                                                  SCRIPTS / "generate_typed_methods.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_module_is_current() -> None:
    """sippet_async/_typed_methods.py is exactly what the table renders to; if not, run
    ``python scripts/generate_typed_methods.py``."""
    generator = _generator()
    committed = Path(_typed_methods.__file__).read_text(encoding="utf-8")
    assert generator.render() == committed


def test_the_check_mode_sees_a_stale_file(tmp_path: Path) -> None:
    """``--check`` fails on a file that differs from the table and passes on a current one."""
    generator = _generator()
    stale = tmp_path / "_typed_methods.py"
    stale.write_text(generator.render() + "# edited by hand\n", encoding="utf-8")
    generator.TARGET = stale
    assert generator.main(["--check"]) == 1
    generator.main([])
    assert generator.main(["--check"]) == 0


def test_typed_methods_cover_every_action_of_the_fake_server() -> None:
    """Each action the fake server implements has a typed method, and no method runs an
    action it does not know."""
    generator = _generator()
    table = {method.action for resource in generator.RESOURCES for method in resource.methods}
    assert table == set(ACTIONS)


def test_a_new_table_entry_is_a_new_method() -> None:
    """Adding an action to the table is enough: it renders into a method of its resource."""
    generator = _generator()
    table = generator.RESOURCES
    contacts = table[0]
    extra = generator.Method("archive", "archive_contact", "by_id", "Archive a contact.")
    grown = (type(contacts)(contacts.attribute, contacts.name, contacts.record,
                            (*contacts.methods, extra)), *table[1:])
    text = generator.render(grown)
    assert "async def archive(" in text
    assert '"archive_contact"' in text
    compile(text, "_typed_methods.py", "exec")
