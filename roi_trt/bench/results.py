"""Results CSVs, the one writer of every benchmark's: written atomically, never over an existing file
unless asked, with the run's provenance on every row; read back with one-line errors for anything that
is not one."""

import csv
from collections import OrderedDict

from ..errors import RoiTrtError
from ..fileio import atomic_output, check_output
from .provenance import provenance


def write_rows(path, fields, rows, settings=None, replace=False, cell=lambda value: value, libraries=()):
    """`rows` as CSV at `path`: columns `fields`, then the provenance columns `fields` lacks; every row also
    gets `settings` (the run's parameters) and the provenance (`libraries`: extra version columns, see
    provenance). A row's own value wins; `cell` formats a value. An existing `path` stays unless `replace`."""
    common = OrderedDict(settings or ())
    for column, value in provenance(libraries).items():
        common.setdefault(column, value)
    columns = list(fields) + [c for c in common if c not in fields]
    with atomic_output(path, replace) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: cell(v) for k, v in dict(common, **row).items()})


def output_arguments(parser, default):
    """A benchmark script's -o/--output (default: `default`) and --force."""
    parser.add_argument("-o", "--output", default=default, help="Results CSV [default: %(default)s].")
    parser.add_argument("--force", action="store_true", help="Replace an existing results CSV.")


def parse_arguments(parser, argv=None):
    """Parse, then refuse an output that could not be written (it exists without --force, its directory is
    read-only, ...) before anything is measured."""
    args = parser.parse_args(argv)
    try:
        check_output(args.output, replace=args.force)
    except RoiTrtError as exc:
        parser.error(str(exc))
    return args


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
