from decimal import Decimal

import pytest

from shared.domain.events import Channel
from shared.domain.rendering import (
    RenderedMessage,
    RenderError,
    compile_message,
    render_message,
    template_context,
)


def render(channel: Channel = Channel.EMAIL, **template: object) -> RenderedMessage:
    ctx = template.pop("ctx", {})
    compiled = compile_message(channel, template)
    assert isinstance(ctx, dict)
    return render_message(compiled, template_context(ctx, {"first_name": "Ada"}, {}))


def test_personalises_from_ctx_profile_and_collections() -> None:
    rendered = render(
        subject="{{ profile.first_name }}: {{ ctx.products|length }} items",
        text="{% for p in ctx.products %}{{ p.name }};{% endfor %}",
        ctx={"products": [{"name": "shoes"}, {"name": "socks"}]},
    )
    assert rendered.parts == {"subject": "Ada: 2 items", "html": "", "text": "shoes;socks;"}


def test_html_escapes_event_data_but_text_does_not() -> None:
    rendered = render(html="<p>{{ ctx.note }}</p>", text="{{ ctx.note }}",
                      ctx={"note": "<b>&</b>"})
    assert rendered.parts["html"] == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>"
    assert rendered.parts["text"] == "<b>&</b>"


def test_one_line_parts_cannot_carry_a_second_line() -> None:
    ctx = {"s": "hi\r\nBcc: x@y.z"}
    assert render(subject="{{ ctx.s }}", ctx=ctx).parts["subject"] == "hi Bcc: x@y.z"
    push = render(Channel.PUSH, title="{{ ctx.s }}", ctx=ctx)
    assert push.parts["title"] == "hi Bcc: x@y.z"


def test_sms_has_text_only_and_push_has_title_body_and_data() -> None:
    assert render(Channel.SMS, text="Hi {{ profile.first_name }}").parts == {"text": "Hi Ada"}
    push = render(Channel.PUSH, title="t", body="b {{ ctx.n }}",
                  data={"deepLink": "app://o/{{ ctx.n }}"}, ctx={"n": 7})
    assert push.parts == {"title": "t", "body": "b 7"}
    assert push.data == {"deepLink": "app://o/7"}


def test_a_part_foreign_to_the_channel_is_refused() -> None:
    with pytest.raises(RenderError, match="subject"):
        compile_message(Channel.SMS, {"subject": "x", "text": "y"})


def test_missing_values_render_empty() -> None:
    assert render(text="[{{ ctx.absent }}][{{ profile.absent }}]").parts["text"] == "[][]"


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
        compile_message(Channel.EMAIL, {"subject": "s", "html": "{% for %}", "text": "t"})


def test_exact_decimals_add_and_multiply_past_python_s_28_digits() -> None:
    big = Decimal("12345678901234567890.123456789")
    rendered = render(subject="{{ ctx.total * 2 }} {{ ctx.big + ctx.big }} {{ ctx.big * 3 }}",
                      ctx={"total": Decimal("19.9"), "big": big})
    assert rendered.parts["subject"] == (  # Python's default context keeps 28 digits
        "39.8 24691357802469135780.246913578 37037036703703703670.370370367")


def test_a_float_literal_beside_a_decimal_is_the_decimal_it_was_written_as() -> None:
    """Python refuses Decimal * float; a marketer's 1.2 means exactly 1.2."""
    rendered = render(
        subject="{{ ctx.total * 1.2 }} {{ 0.1 + ctx.total }} {{ ctx.total - 0.9 }}"
                " {{ ctx.total / 2.5 }} {{ ctx.total // 0.5 }} {{ ctx.total % 0.5 }}",
        ctx={"total": Decimal("19.9")})
    assert rendered.parts["subject"] == "23.88 20.0 19.0 7.96 39 0.4"


def test_a_field_named_like_a_dict_method_is_the_field() -> None:
    """{% for p in ctx.items %} iterated dict.items, a method: the send failed."""
    rendered = render(subject="{% for p in ctx.items %}{{ p.copy }}{% endfor %} {{ ctx.keys }}",
                      text="{{ ctx.get('keys') }} {{ profile.items()|list|length }}",
                      ctx={"items": [{"copy": "a"}, {"copy": "b"}], "keys": 3})
    assert rendered.parts["subject"] == "ab 3"
    assert rendered.parts["text"] == "3 1"
