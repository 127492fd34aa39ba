"""Exercise checkers for the notebooks: call one with your function; it tries it on inputs where the right
answer is known and, when it is wrong, says which common mistake it looks like instead of just "wrong".

    from kdlab.exercises import nb01
    nb01.check_soft_targets(my_soft_targets)    # prints "correct: ..." or raises ExerciseFailed
    nb01.solution("soft_targets")               # shows a reference solution (try first!)

One module per notebook (`nb01`, `nb02`, ...); each has `check_*` functions and a `solution(name)`.
"""
import inspect


class ExerciseFailed(AssertionError):
    """Your function gave a wrong answer; the message says how it differs from the expected one."""


def passed(what: str) -> None:
    print(f"correct: {what}")


def fail(msg: str):
    raise ExerciseFailed(msg)


def show(fn) -> None:
    """Print a reference solution's source."""
    print(inspect.getsource(fn))


def solutions(module_solutions: dict, name: str):
    if name not in module_solutions:
        raise KeyError(f"no solution named {name!r}; there are: {', '.join(module_solutions)}")
    show(module_solutions[name])
