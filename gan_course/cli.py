"""The `gan-course` command (also `python -m gan_course`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan_course.i18n import N_, _

# argparse's own words (usage line, section titles, errors), translated with the course's
# messages: argparse looks up its module-level `_` each time it formats help or an error.
ARGPARSE_MESSAGES = (N_("usage: "), N_("options"), N_("positional arguments"), N_("show this help message and exit"),
                     N_("the following arguments are required: %s"), N_("unrecognized arguments: %s"),
                     N_("invalid choice: %(value)r (choose from %(choices)s)"), N_("%(prog)s: error: %(message)s\n"),
                     N_("invalid %(type)s value: %(value)r"), N_("expected one argument"))


def _root() -> Path:
    """The course folder: the current directory if it holds solutions/, else the repository."""
    from gan_course.grader.read import course_root

    return course_root()


def cmd_release(args) -> int:
    from gan_course.release import CATALOGUES, ReleaseError, release

    root = _root()
    solutions = Path(args.solutions or root / "solutions")
    labs = Path(args.labs or root / "labs")
    try:
        problems = release(solutions, labs, check=args.check, catalogues=args.catalogues,
                           update_catalogues=args.update_catalogues)
    except ReleaseError as err:
        print(_("gan-course release: {error}").format(error=err), file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        if problems:
            print(_("labs/ is out of sync with solutions/: run `gan-course release` and commit."), file=sys.stderr)
            return 1
        n = len(list(solutions.glob("[0-9][0-9]_*.ipynb")))
        # release() checks the translated editions when their catalogues are there.
        editions = args.update_catalogues or Path(args.catalogues or solutions.parent / CATALOGUES).is_dir()
        if editions:
            print(_("labs/ matches solutions/ ({n} notebooks), and so do the Chinese edition (labs/zh/, solutions/zh/) "
                    "and the expected outputs (labs/expected/).").format(n=n))
        else:
            print(_("labs/ matches solutions/ ({n} notebooks), and so do the expected outputs (labs/expected/).").format(n=n))
        return 0
    print(_("wrote student notebooks to {folder}").format(folder=labs))
    return 1 if problems else 0


def cmd_download(args) -> int:
    from gan_course import data

    from gan_course import hub

    names = args.names or list(data.DATASETS)
    known = list(data.DATASETS) + [hub.HUB_FOLDER]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(
            _("gan-course download: unknown dataset(s) {unknown}; known: {known}").format(
                unknown=", ".join(unknown), known=", ".join(known)),
            file=sys.stderr,
        )
        return 2
    failed = 0
    for name in names:
        try:
            if name == hub.HUB_FOLDER:  # the TF Hub modules' archives, for a campus mirror
                paths = [data.fetch(hub.HUB_FOLDER, f) for f in hub.MODULES.values()]
            else:
                paths = data.download(name)
            print(_("{name}: ready in {folder}").format(name=name, folder=paths[0].parent))
        except data.DataUnavailable as err:
            failed += 1
            print(f"{name}: {err}", file=sys.stderr)
    return 1 if failed else 0


def cmd_mirror(args) -> int:
    from gan_course import data

    folder = Path(args.folder).resolve()
    try:
        laid, missing = data.lay_out_mirror(folder)
    except OSError as err:
        print(_("gan-course mirror: cannot write {folder} ({reason})").format(folder=folder, reason=err.strerror or err),
              file=sys.stderr)
        return 2
    print(_("Laid out {n} verified file(s) from {cache} in {folder}:").format(n=len(laid), cache=data.cache_dir(),
                                                                             folder=folder))
    for name in laid:
        print(f"  {name}")
    if missing:
        print(_("Not in this cache, so not on the mirror: {files}").format(files=", ".join(missing)))
        print(_("  (fetch them first: `gan-course download`, `gan-course download hub` for the BigGAN-deep module)"))
    if not laid:
        return 1
    print(_("Serve the folder with any static web server, for example:"))
    print(f"  python -m http.server {args.port} --directory {folder}")
    print(_("and point every student's environment at it (it is tried before the public sources):"))
    print("  " + _("export {variable}=http://<this server's address>:{port}").format(variable=data.ENV_MIRRORS,
                                                                                   port=args.port))
    return 0


def cmd_export(args) -> int:
    from gan_course import data, folders

    if args.name not in data.ARRAY_READERS:
        print(f"gan-course export: cannot export {args.name!r}; choose one of {', '.join(data.ARRAY_READERS)}",
              file=sys.stderr)
        return 2
    try:
        folders.export_dataset(args.name, args.folder, split=args.split, per_class=args.per_class)
    except (data.DataUnavailable, folders.FolderError) as err:
        print(f"gan-course export: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_doctor(args) -> int:
    from gan_course import doctor

    return doctor.main()


def cmd_grade(args) -> int:
    from gan_course import grade

    return grade.main(args)


def build_parser() -> argparse.ArgumentParser:
    argparse._ = _
    parser = argparse.ArgumentParser(prog="gan-course", description=_("GAN Lab course tools."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("download", help=_("fetch datasets into the cache (GAN_COURSE_DATA)"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=_("datasets to fetch (default: all); `hub` fetches the TF Hub modules' archives"))
    p.set_defaults(func=cmd_download, tensorflow=True)

    p = sub.add_parser("mirror", help=_("lay out the verified data cache as a folder a web server can serve "
                                        "to a class (then set GAN_COURSE_MIRRORS)"))
    p.add_argument("folder", metavar="DIR", help=_("the folder to fill: DIR/<dataset>/<file>"))
    p.add_argument("--port", type=int, default=8000, help=_("port shown in the instructions (default: 8000)"))
    p.set_defaults(func=cmd_mirror)

    p = sub.add_parser("export", help=_("write a dataset as PNG files, one folder per class (for lab 07)"))
    p.add_argument("name", metavar="NAME", help=_("dataset to export (fashion_mnist, mnist)"))
    p.add_argument("folder", metavar="FOLDER", help=_("new folder to write the images into"))
    p.add_argument("--split", choices=("train", "test"), default="train", help=_("which split (default: train)"))
    p.add_argument("--per-class", type=int, default=None, metavar="N",
                   help=_("at most N images of each class, chosen at random (default: all)"))
    p.set_defaults(func=cmd_export)


    p = sub.add_parser("doctor", help=_("check this machine for the labs and say how to fix what is missing"))
    p.set_defaults(func=cmd_doctor, tensorflow=True)

    p = sub.add_parser("release", help=_("write labs/ from solutions/ (solutions stripped)"))
    p.add_argument("--check", action="store_true", help=_("only check that labs/ is in sync; exit 1 if not"))
    p.add_argument("--solutions", help=_("solutions folder (default: ./solutions)"))
    p.add_argument("--labs", help=_("labs folder (default: ./labs)"))
    p.add_argument("--catalogues", help=_("translation catalogues (default: i18n/ beside solutions/)"))
    p.add_argument("--update-catalogues", action="store_true",
                   help=_("add the English that is new to each lab's catalogue (fuzzy where it replaces a translated text)"))
    p.set_defaults(func=cmd_release, tensorflow=True)

    p = sub.add_parser("grade", help=_("grade a folder of submitted notebooks against solutions/"))
    p.add_argument("submissions", help=_("folder with one notebook (or one folder) per student"))
    p.add_argument("--out", required=True, help=_("where grades.csv, results.json and feedback/ go"))
    p.add_argument("--lab", help=_("lab number (default: from the notebooks' metadata)"))
    p.add_argument("--workers", type=int, help=_("submissions graded at once (default: number of cores)"))
    p.add_argument("--timeout", type=float, default=60.0, help=_("seconds per exercise (default: 60)"))
    p.add_argument("--memory", type=int, default=2048, help=_("MiB per exercise beyond the libraries (default: 2048)"))
    p.add_argument("--seed", type=int, help=_("batch seed for the hidden inputs (default: fresh each run)"))
    p.add_argument("--require-sandbox", action="store_true",
                   help=_("refuse to grade where the operating-system sandbox (bubblewrap) cannot run"))
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "tensorflow", False):  # the command loads TensorFlow: imported here without its notices
        from gan_course.tflog import import_tensorflow

        import_tensorflow()
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
