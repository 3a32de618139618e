"""The `gan-course` command (also `python -m gan_course`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _root() -> Path:
    """The course folder: the current directory if it holds solutions/, else the repository."""
    from gan_course.grader.read import course_root

    return course_root()


def cmd_release(args) -> int:
    from gan_course.release import ReleaseError, release

    root = _root()
    solutions = Path(args.solutions or root / "solutions")
    labs = Path(args.labs or root / "labs")
    try:
        problems = release(solutions, labs, check=args.check)
    except ReleaseError as err:
        print(f"gan-course release: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        if problems:
            print("labs/ is out of sync with solutions/: run `gan-course release` and commit.", file=sys.stderr)
            return 1
        print(f"labs/ matches solutions/ ({len(list(solutions.glob('[0-9][0-9]_*.ipynb')))} notebooks).")
        return 0
    print(f"wrote student notebooks to {labs}")
    return 1 if problems else 0


def cmd_download(args) -> int:
    from gan_course import data

    names = args.names or list(data.DATASETS)
    unknown = [n for n in names if n not in data.DATASETS]
    if unknown:
        print(
            f"gan-course download: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(data.DATASETS)}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for name in names:
        try:
            paths = data.download(name)
            print(f"{name}: ready in {paths[0].parent}")
        except data.DataUnavailable as err:
            failed += 1
            print(f"{name}: {err}", file=sys.stderr)
    return 1 if failed else 0


def cmd_doctor(args) -> int:
    from gan_course import doctor

    return doctor.main()


def cmd_grade(args) -> int:
    from gan_course import grade

    return grade.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-course", description="GAN Lab course tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("download", help="fetch datasets into the cache (GAN_COURSE_DATA)")
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets to fetch (default: all)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("doctor", help="check this machine for the labs and say how to fix what is missing")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("release", help="write labs/ from solutions/ (solutions stripped)")
    p.add_argument("--check", action="store_true", help="only check that labs/ is in sync; exit 1 if not")
    p.add_argument("--solutions", help="solutions folder (default: ./solutions)")
    p.add_argument("--labs", help="labs folder (default: ./labs)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("grade", help="grade a folder of submitted notebooks against solutions/")
    p.add_argument("submissions", help="folder with one notebook (or one folder) per student")
    p.add_argument("--out", required=True, help="where grades.csv, results.json and feedback/ go")
    p.add_argument("--lab", help="lab number (default: from the notebooks' metadata)")
    p.add_argument("--workers", type=int, help="submissions graded at once (default: number of cores)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise (default: 60)")
    p.add_argument("--memory", type=int, default=2048, help="MiB per exercise beyond the libraries (default: 2048)")
    p.add_argument("--seed", type=int, help="batch seed for the hidden inputs (default: fresh each run)")
    p.add_argument("--require-sandbox", action="store_true",
                   help="refuse to grade where the operating-system sandbox (bubblewrap) cannot run")
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
