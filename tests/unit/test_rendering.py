import pytest

from shared.domain.rendering import (
    EmailTemplate,
    RenderError,
    compile_email,
    render_email,
    template_context,
)


def render(subject: str = "s", html: str = "h", text: str = "t", **ctx: object):
    compiled = compile_email(EmailTemplate(subject=subject, html=html, text=text))
    return render_email(compiled, template_context(dict(ctx), {"first_name": "Ada"}, {}))


def test_personalises_from_ctx_profile_and_collections() -> None:
    rendered = render(
        subject="{{ profile.first_name }}: {{ ctx.products|length }} items",
        text="{% for p in ctx.products %}{{ p.name }};{% endfor %}",
        products=[{"name": "shoes"}, {"name": "socks"}],
    )
    assert rendered.subject == "Ada: 2 items"
    assert rendered.text == "shoes;socks;"


def test_html_escapes_event_data_but_text_does_not() -> None:
    rendered = render(html="<p>{{ ctx.note }}</p>", text="{{ ctx.note }}", note="<b>&</b>")
    assert rendered.html == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>"
    assert rendered.text == "<b>&</b>"


def test_subject_cannot_carry_a_second_header_line() -> None:
    assert render(subject="{{ ctx.s }}", s="hi\r\nBcc: x@y.z").subject == "hi Bcc: x@y.z"


def test_missing_values_render_empty() -> None:
    assert render(text="[{{ ctx.absent }}][{{ profile.absent }}]").text == "[][]"


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ctx.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_template_injection_fails_safely(attack: str) -> None:
    with pytest.raises(RenderError):
        render(text=attack)


def test_syntax_errors_name_the_part() -> None:
    with pytest.raises(RenderError, match=r"^html:"):
        compile_email(EmailTemplate(subject="s", html="{% for %}", text="t"))
