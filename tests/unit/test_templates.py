"""Command templates: variables found, strict sandboxed rendering, task slugs."""

from __future__ import annotations

import pytest

from signoff.errors import SignoffError
from signoff.spec import TemplateRenderError, render, task_slug, template_variables


def test_template_variables_are_the_undeclared_names() -> None:
    template = (
        "python train.py --depth {{ max_depth }} --data {{ inputs.ingest }} "
        "{% for s in seeds %}--seed {{ s }} {% endfor %}{% set n = 3 %}{{ n }}"
    )
    assert template_variables(template) == {"max_depth", "inputs", "seeds"}
    assert template_variables("python plain.py") == set()


def test_template_syntax_error_is_a_value_error_with_a_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        template_variables("python x.py\n{{ unclosed ")


def test_render_fills_variables_without_escaping() -> None:
    rendered = render("run --depth {{ d }} --q '{{ q }}'", {"d": 6, "q": "a < b & c"})
    assert rendered == "run --depth 6 --q 'a < b & c'"


def test_render_refuses_a_missing_variable() -> None:
    with pytest.raises(TemplateRenderError, match="'max_depth' is undefined") as caught:
        render("run --depth {{ max_depth }}", {})
    assert isinstance(caught.value, SignoffError)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",  # the sandbox blocks private attributes
        "{{ a / 0 }}",
        "{% if %}",
    ],
)
def test_render_failures_are_signoff_errors(template: str) -> None:
    with pytest.raises(SignoffError):
        render(template, {"a": 1})


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Train XGB", "train_xgb"),
        ("train-xgb", "train_xgb"),
        ("train_xgb", "train_xgb"),
        ("  --Pick  Champion!! ", "pick_champion"),
        ("sign-off", "sign_off"),
        ("Model2Prod", "model2prod"),
        ("a__b", "a_b"),
        ("café au lait", "caf_au_lait"),
        ("!!!", ""),
    ],
)
def test_task_slug(name: str, slug: str) -> None:
    assert task_slug(name) == slug
