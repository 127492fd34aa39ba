"""kdlab's command line.

    python -m kdlab info            the run card of this machine (versions, device, git commit, scale)
    python -m kdlab scales          the scale switch's table
    python -m kdlab data NAME ...   download (or verify) datasets into the data folder
    python -m kdlab bench           kdlab's training pipeline against the conventional one
                    bench --costs   measure this machine's row of the cost table that plan uses
    python -m kdlab plan [NOTEBOOK] [--scale S]
                                    what a notebook (or each) trains at a scale, and its expected time here
                                    and on a GPU
    python -m kdlab sweep NOTEBOOK --scale S --executor slurm|local|debug [--jobs N]
                                    a notebook's runs as jobs on a scheduler (pip install -e ".[cluster]")
    python -m kdlab teachers list   the teachers in the cache (KDLAB_HOME)
    python -m kdlab teachers export DIR
                                    copy them with a manifest into DIR, for a course to share: learners set
                                    KDLAB_TEACHERS=DIR (or the address DIR is served at)
"""
import argparse
import sys


def main(argv=None):
    """Runs a command; a user's mistake (a wrong name, a bad value, missing data) prints one line, no traceback."""
    from kdlab.data import DataError
    from kdlab.io import CheckpointError
    try:
        return _main(argv)
    except (ValueError, TypeError, KeyError, DataError, CheckpointError, OSError, RuntimeError) as e:  # said, not traced
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"kdlab: error: {message}", file=sys.stderr)
        return 2


def _no_arguments(cmd, rest):
    if rest:
        raise ValueError(f"'{cmd}' takes no arguments, got {' '.join(rest)!r}; run 'python -m kdlab --help'")


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "info":
        _no_arguments(cmd, rest)
        import kdlab
        from kdlab.paths import data_dir, home_dir
        from kdlab.scale import get_scale
        print(kdlab.run_card())
        print(f"  data folder  {data_dir()}  (KDLAB_DATA)\n  checkpoints  {home_dir()}  (KDLAB_HOME)")
        get_scale()
        return 0
    if cmd == "scales":
        _no_arguments(cmd, rest)
        from kdlab.scale import table
        print(table().to_string())
        return 0
    if cmd == "data":
        from kdlab.data import DATASETS, load
        p = argparse.ArgumentParser(prog="python -m kdlab data")
        p.add_argument("names", nargs="+", help=f"one or more of {', '.join(DATASETS)}")
        p.add_argument("--root", default=None, help="folder to use (default: KDLAB_DATA or the checkout's data/)")
        for name in p.parse_args(rest).names:
            classes, train, test = load(name, p.parse_args(rest).root)
            print(f"{name}: {len(train)} train / {len(test)} test images, {len(classes)} classes, "
                  f"{tuple(train.images.shape[1:])}: ready")
        return 0
    if cmd == "plan":
        from kdlab.plans import report
        from kdlab.scale import SCALES
        p = argparse.ArgumentParser(prog="python -m kdlab plan")
        p.add_argument("notebook", nargs="?", default=None, help="01-07 or a notebook's name (default: all seven)")
        p.add_argument("--scale", default=None, help=f"one of {', '.join(SCALES)} (default: KDLAB_SCALE, else this "
                       f"machine's)")
        a = p.parse_args(rest)
        print(report(a.notebook, a.scale))
        return 0
    if cmd == "teachers":
        return _teachers(rest)
    if cmd == "sweep":
        return _sweep(rest)
    if cmd == "bench":
        from kdlab.bench import main as bench
        bench(rest)
        return 0
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


def _sweep(rest):
    from kdlab import sweep
    from kdlab.scale import SCALES, resolve_name
    p = argparse.ArgumentParser(prog="python -m kdlab sweep", description="Submits jobs that each execute the "
                                "notebook, sharing its runs through the run cache (see kdlab.sweep).")
    p.add_argument("notebook", help="01-07, a notebook's name, or the path of a notebook of your own")
    p.add_argument("--scale", default=None, help=f"one of {', '.join(SCALES)} (default: KDLAB_SCALE, else this "
                   f"machine's)")
    p.add_argument("--executor", default="local", help=f"one of {', '.join(sweep.EXECUTORS)} (default: local)")
    p.add_argument("--jobs", type=int, default=2, help="how many jobs share the runs (default: 2)")
    p.add_argument("--hours", type=float, default=24.0, help="each job's time limit (default: 24)")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--cpus", type=int, default=None, help="CPU cores per SLURM job (default: 8)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per SLURM job (default: 1)")
    p.add_argument("--no-wait", action="store_true", help="submit and return; follow with --status")
    p.add_argument("--status", action="store_true", help="what the last sweep's logs say so far; submits nothing")
    a = p.parse_args(rest)
    scale = a.scale or resolve_name()
    if a.status:
        print(sweep.progress(sweep.latest(a.notebook, scale)))
        return 0
    from kdlab.plans import NOTEBOOKS, report, resolve
    _, path = sweep.check(a.notebook, scale, a.executor, a.jobs, a.hours)
    if path.stem in NOTEBOOKS:
        print(report(resolve(path.stem), scale))
    s = sweep.submit(a.notebook, scale, a.executor, a.jobs, hours=a.hours, partition=a.partition, cpus=a.cpus,
                     gpus=a.gpus)
    print(f"submitted {len(s.jobs)} {a.executor} jobs for {path.name} at scale {scale}; logs and executed notebooks "
          f"in {s.folder}")
    if a.no_wait:
        print(f"follow it with: python -m kdlab sweep {a.notebook} --scale {scale} --status")
        return 0
    try:
        results = s.wait()
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the jobs go on (python -m kdlab sweep {a.notebook} --scale {scale} --status)")
        return 130
    failed = [r for r in results if "error" in r]
    print(f"{len(results) - len(failed)} of {len(results)} jobs finished" + (
        f"; {len(failed)} failed (their logs are in {s.folder / 'submitit'}): submit the sweep again to finish "
        f"what they left" if failed else f"; open {path.name} at scale {scale}: it loads every run"))
    return 1 if failed else 0


def _teachers(rest):
    import pandas as pd

    from kdlab.cache import cached_teachers, export_teachers
    from kdlab.paths import home_dir
    p = argparse.ArgumentParser(prog="python -m kdlab teachers")
    p.add_argument("action", choices=("list", "export"))
    p.add_argument("folder", nargs="?", help="export: the folder to write (made if missing)")
    a = p.parse_args(rest)
    if a.action == "list":
        if a.folder:
            raise ValueError("'teachers list' takes no folder: it lists the cache in KDLAB_HOME")
        entries = cached_teachers()
    elif not a.folder:
        raise ValueError("'teachers export' needs the folder to write, e.g. python -m kdlab teachers export "
                         "/srv/course/teachers")
    else:
        entries = export_teachers(a.folder)
    if not entries:
        print(f"no teachers in {home_dir() / 'teachers'}: run a notebook (or get_teacher) first")
        return 0
    table = pd.DataFrame([{"teacher": e["key"]["arch"], "dataset": e["key"]["data"]["dataset"],
                           "scale": e["key"]["scale"], "seed": e["key"]["seed"],
                           "test acc %": round(100 * e["test_acc"], 2), "device": e["device"], "file": e["file"]}
                          for e in entries])
    print(table.to_string(index=False))
    if a.action == "export":
        print(f"\n{len(entries)} teachers in {a.folder} with manifest.json; learners set KDLAB_TEACHERS={a.folder} "
              f"(or to the http(s) address that serves it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
