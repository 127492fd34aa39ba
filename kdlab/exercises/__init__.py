"""Exercise checkers for the notebooks: call one with your function; it tries it on inputs where the right
answer is known and, when it is wrong, says which common mistake it looks like instead of just "wrong".

    from kdlab import exercises
    exercises.dark_knowledge.check_soft_targets(my_soft_targets)  # prints "correct: ..." or raises ExerciseFailed
    exercises.dark_knowledge.solution("soft_targets")             # shows a reference solution (try first!)

One module per concept, each with `check_*` functions and a `solution(name)`: `dark_knowledge`, `temperature`,
`self_teaching`, `rectification`, `knowledge_adjustment`, `dynamic_temperature`, `student_friendly`.
"""
import inspect

import torch


class ExerciseFailed(AssertionError):
    """Your function gave a wrong answer; the message says how it differs from the expected one."""


def passed(what: str) -> None:
    print(f"correct: {what}")


def fail(msg: str):
    raise ExerciseFailed(msg)


def close(a, b, rtol: float, atol: float) -> bool:
    """Same shape and equal within tolerances, compared in float64."""
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def _copy(arg):
    # the learner's function gets copies: an in-place edit must not change the checker's reference inputs
    if isinstance(arg, torch.Tensor):
        return arg.clone()
    if isinstance(arg, list):
        return [_copy(a) for a in arg]
    return arg


def _describe(arg):
    if isinstance(arg, torch.Tensor):
        return str(tuple(arg.shape))
    if isinstance(arg, list):
        return "[" + ", ".join(_describe(a) for a in arg) + "]"
    return repr(arg)


def call(fn, *args) -> torch.Tensor:
    """The learner's `fn(*args)` on copies of the arguments, as a detached tensor; whatever it raises, or a result
    that is not a tensor, becomes an ExerciseFailed that says so."""
    try:
        out = fn(*(_copy(a) for a in args))
    except Exception as e:  # the learner's code: report whatever it raised
        fail(f"your function raised {type(e).__name__}: {e} (called with {', '.join(_describe(a) for a in args)})")
    if out is None:
        _returned_none()
    try:
        return torch.as_tensor(out).detach()
    except Exception:
        fail(f"your function returned a {type(out).__name__}; return a tensor")


def _returned_none():
    fail("your function returned None: did it forget to `return` its result? (a function without a `return` "
         "statement returns None)")


def run_learner(fn, *args, hint: str = "return a tensor"):
    """The learner's `fn(*args)` on the arguments themselves (so that a checker can see in-place edits), its
    result as it is (gradients kept); raising, or returning something that is not a tensor, becomes an
    ExerciseFailed that says so, ending with `hint`."""
    try:
        out = fn(*args)
    except Exception as e:  # the learner's code: report whatever it raised
        fail(f"your function raised {type(e).__name__}: {e}")
    if out is None:
        _returned_none()
    if not isinstance(out, torch.Tensor):
        fail(f"your function returned a {type(out).__name__}; {hint}")
    return out


def show(fn) -> None:
    """Print a reference solution's source."""
    print(inspect.getsource(fn))


def solutions(module_solutions: dict, name: str):
    if name not in module_solutions:
        raise KeyError(f"no solution named {name!r}; there are: {', '.join(module_solutions)}")
    show(module_solutions[name])


# The checkers by concept (imported last: each uses the helpers above).
from kdlab.exercises import (dark_knowledge, dynamic_temperature, knowledge_adjustment, rectification,  # noqa: E402
                             self_teaching, student_friendly, temperature)
