"""Check a command's overrides before Hydra runs: what Hydra would refuse becomes one line that says what
is wrong and suggests the nearest key or option ("did you mean").

Hydra's own messages span several lines and, for a misspelled group or key, advise `+name=value`
(adding a new key), which is never what a user of a fixed schema wants.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from actstudy.paths import CONF_DIR

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def _nearest(word: str, candidates: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {found[0]}?" if found else ""


def _groups(conf_dir: Path) -> dict[str, list[str]]:
    """Return each config group (a folder of conf/) with its options (its yaml files)."""
    groups = {}
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        group = folder.relative_to(conf_dir).as_posix()
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options and not group.startswith("hydra"):
            groups[group] = options
    return groups


def _keys(tree: object, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix.rstrip(".")]
    keys = []
    for key, value in tree.items():
        keys += [f"{prefix}{key}", *(_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [])]
    return keys


def _first_values(overrides: list) -> list[str]:
    """Return one `key=value` per override, taking a sweep's first value (composing needs one)."""
    singles = []
    for o in overrides:
        if o.is_hydra_override():
            continue
        if o.is_sweep_override():
            try:
                first = next(iter(o.sweep_string_iterator()), None)
            except Exception:  # glob() and the like need Hydra's config loader: the sweep will check them
                continue
            if first is not None:
                singles.append(f"{o.get_key_element()}={first}")
        else:
            singles.append(o.input_line)
    return singles


# Commands that only ask Hydra something: no job runs.
ASKS_HYDRA = ("-sc", "--shell-completion", "--info", "-h", "--help", "--hydra-help", "-c", "--cfg")
# What Hydra runs instead of the job: it accepts only one of them and -m (or --multirun).
OTHER_MODES = ("-c", "--cfg", "--info", "-sc", "--shell-completion")
# Commands that are not a training job, or that load options from elsewhere: left to Hydra.
PASS_THROUGH = ("-sc", "--shell-completion", "-cd", "--config-dir", "-cp", "--config-path", "-cn",
                "--config-name", "--info", "-h", "--help", "--hydra-help")  # fmt: skip


CONFIG_DIR_FLAGS = ("-cd", "--config-dir")


def config_dir_problem(argv: list[str]) -> str | None:
    """Return one line naming a yaml file in the command's `--config-dir` that is not valid YAML, or the
    folder if it is missing (None: Hydra can read them all; what they say is checked when composed)."""
    import yaml

    folders = []
    for i, argument in enumerate(argv):
        flag, equals, value = argument.partition("=")
        if flag in CONFIG_DIR_FLAGS:
            folders.append(value if equals else (argv[i + 1] if i + 1 < len(argv) else ""))
    for folder in map(Path, folders):
        if not folder.is_dir():
            return f"--config-dir {folder}: no such folder"
        files = (
            f
            for f in folder.rglob("*.yaml")
            if not any(p.startswith(".") for p in f.relative_to(folder).parts)
        )
        for file in sorted(files):  # hidden folders (.git, .venv) hold no config groups
            try:
                yaml.safe_load(file.read_text())
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
                what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                return f"{file}:{where} not valid YAML ({what}); fix the file or move it out of --config-dir"
    return None


def modes_problem(argv: list[str]) -> str | None:
    """Return one line for a sweep (-m) that also asks Hydra to show something (--cfg, --info, ...), which
    Hydra refuses with a traceback; None otherwise."""
    asks = [a.split("=", 1)[0] for a in argv if a.split("=", 1)[0] in OTHER_MODES]
    if ("-m" in argv or "--multirun" in argv) and asks:
        return (
            f"-m with {asks[0]}: Hydra shows one job's config, not a sweep's; drop -m and give each key one "
            "value (e.g. python -m actstudy.train activation=relu --cfg job)"
        )
    return None


def problem(argv: list[str], config_name: str = "config", conf_dir: Path = CONF_DIR) -> str | None:
    """Return one line saying what is wrong with the command's overrides (None: Hydra can compose them)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException
    from omegaconf import OmegaConf

    if any(a.split("=", 1)[0] in PASS_THROUGH for a in argv):
        return None
    sweep = "-m" in argv or "--multirun" in argv
    lines = [a for a in argv if "=" in a and not a.startswith("-")]
    parser = OverridesParser.create()
    for line in lines:
        try:
            parser.parse_overrides([line])
        except OverrideParseException as exc:
            first = str(exc).splitlines()[0]
            return f"cannot read the override {line!r}: {first} (https://hydra.cc/docs/advanced/override_grammar/basic/)"
    overrides = parser.parse_overrides(lines)
    groups = _groups(conf_dir)
    for o in overrides:
        if o.is_sweep_override() and not sweep and not o.is_hydra_override():
            return f"{o.input_line}: several values make a sweep: add -m (or quote them for one string value)"
        if o.key_or_group in groups and not o.is_add() and not o.is_delete():
            options = groups[o.key_or_group]
            if not o.is_sweep_override() and o.value() is None:
                return (
                    f"{o.key_or_group}=null: a config group takes one of its options (options: "
                    f"{', '.join(options)}); leave it out for the default"
                )
            for value in _values(o):
                if value not in options:
                    near = _nearest(value, options)
                    return f"{o.key_or_group}={value}: no such option{near} (options: {', '.join(options)})"
    singles = _first_values(overrides)
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        chosen = [line for line in singles if line.split("=", 1)[0] in groups]  # the options picked
        try:
            known = _keys(OmegaConf.to_container(compose(config_name, overrides=chosen), resolve=False))
        except Exception as exc:  # Hydra's composition errors have many types; the first line says it
            return str(exc).strip().splitlines()[0]
        for o in overrides:
            key = o.key_or_group
            if o.is_hydra_override() or o.is_add() or o.is_delete() or key in groups or key in known:
                continue
            value = "" if o.is_sweep_override() else f"={o.value()}"
            near = _nearest(key, [*known, *groups]).replace("?", f"{value}?")
            listing = "python -m actstudy.train --cfg job lists the keys"
            return f"{key}: no such key or config group{near} ({listing})"
        try:
            compose(config_name, overrides=singles)
        except Exception as exc:  # Hydra's composition errors have many types; the first line says it
            return str(exc).strip().splitlines()[0]
    return None


def _values(o: Override) -> list[str]:
    """Return the option names a group override picks (a sweep's, too); [] when they cannot be listed."""
    if not o.is_sweep_override():
        value = o.value()
        return [] if value is None else [str(value)]
    return _sweep_values(o)


def _sweep_values(o: Override) -> list[str]:
    if not o.is_sweep_override():
        return []
    try:
        return [str(v) for v in o.sweep_string_iterator()]
    except Exception:  # a range or interval sweep of a group makes no sense; composing will say so
        return []
