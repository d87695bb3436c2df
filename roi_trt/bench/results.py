"""Results CSVs (latency, precision): written atomically with the run's environment on every row, and
read back with one-line errors for anything that is not one."""

import csv

from ..errors import RoiTrtError
from ..fileio import atomic_output


def write_rows(path, fields, rows, env, complete, replace=True, cell=lambda value: value):
    """Rows (plus `env` and the `complete` flag) as CSV with `fields` as columns; `cell` formats a value."""
    with atomic_output(path, replace) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: cell(v) for k, v in dict(row, complete=int(complete), **env).items()})


def read_rows(path, what, needed, numeric):
    """Rows of the `what` results CSV at `path`, which must hold the `needed` columns; `numeric` columns
    become floats (nan where empty)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise RoiTrtError("{}: {}".format(path, exc.strerror)) from None
    except (UnicodeDecodeError, csv.Error):
        raise RoiTrtError("{}: not a {} results file (not CSV text)".format(path, what)) from None
    missing = [c for c in needed if rows and c not in rows[0]]
    if not rows or missing:
        raise RoiTrtError("{}: not a {} results file ({})".format(
            path, what, "missing " + ", ".join(missing) if missing else "empty"))
    for row in rows:
        for key in numeric:
            try:
                row[key] = float(row[key]) if row.get(key) not in (None, "") else float("nan")
            except ValueError:
                raise RoiTrtError("{}: column {} holds '{}', not a number".format(path, key, row[key])) from None
    return rows
