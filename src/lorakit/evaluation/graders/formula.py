"""A multi grader's `calculate_output`: arithmetic over its graders' scores, read with `ast` and evaluated node by
node (never by `eval`).

The language is OpenAI's: numbers, the graders' names, `+ - * /`, `^` or `**` (power, read as `**`: it binds
tighter than `*`), parentheses, and the
functions min, max, abs, floor, ceil, exp, sqrt, log. Anything else (attributes, subscripts, other calls, names
that are not graders) is refused when the grader is validated, before any example is graded.
"""

from __future__ import annotations

import ast
import math
import operator

FUNCTIONS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
             "sqrt": math.sqrt, "log": math.log}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_LENGTH = 1000  # characters: a formula is a line, not a program
MAX_DEPTH = 50     # nesting of operators and calls (checking and computing recurse through it)


class FormulaError(ValueError):
    """A formula outside the language, or one that cannot be computed (str() says which and why)."""


def parse(text: str, names: set[str]) -> ast.Expression:
    """The checked syntax tree. Raises FormulaError naming the first thing outside the language."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula is empty")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is {len(text)} characters long; at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")  # power, binding as tightly as **
    except SyntaxError as err:
        raise FormulaError(f"not a formula ({err.msg} at column {err.offset})") from None
    except (RecursionError, MemoryError):
        raise FormulaError(f"the formula nests more than {MAX_DEPTH} deep") from None
    if _too_deep(tree):
        raise FormulaError(f"the formula nests operators or calls more than {MAX_DEPTH} deep")
    _check(tree.body, names)
    return tree


def _too_deep(tree: ast.AST) -> bool:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return False


def _check(node: ast.AST, names: set[str]) -> None:
    """Refuse any node outside the language, depth first."""
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise FormulaError(f"the operator {type(node.op).__name__} is not allowed; use + - * / ^")
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise FormulaError(f"the operator {type(node.op).__name__} is not allowed; use + - * / ^")
        _check(node.operand, names)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"{node.value!r} is not a number")
    elif isinstance(node, ast.Name):
        if node.id not in names:
            known = ", ".join(sorted(names)) or "none"
            raise FormulaError(f"{node.id!r} is not one of the graders ({known})")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise FormulaError(f"only the functions {', '.join(FUNCTIONS)} may be called")
        if not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise FormulaError(f"{node.func.id}() needs one or more plain arguments")
        for arg in node.args:
            _check(arg, names)
    else:
        raise FormulaError(f"{ast.unparse(node)!r} is not allowed in a formula; use numbers, grader names, "
                           f"+ - * / ^ and {', '.join(FUNCTIONS)}")


def evaluate(tree: ast.Expression, scores: dict[str, float]) -> float:
    """The formula's value for one example's scores. Raises FormulaError (division by zero, log of 0, ...)."""
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(scores[node.id])
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](value(node.operand))
        return float(FUNCTIONS[node.func.id](*(value(a) for a in node.args)))

    try:
        result = float(value(tree))
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as err:
        raise FormulaError(f"cannot be computed for these scores ({err})") from None
    if math.isnan(result) or math.isinf(result):
        raise FormulaError("the value is not a finite number")
    return result
