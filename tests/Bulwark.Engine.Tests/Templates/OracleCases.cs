namespace Bulwark.Engine.Tests.Templates;

/// <summary>
/// Templates written for these tests, each rendered by Python Jinja2 (the oracle) and by our
/// interpreter. Variables are JSON, so both sides see the same values. Grouped by feature.
/// </summary>
internal static class OracleCases
{
    private const string Messages = """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>&'\"\n"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "  Bye  "}]}""";

    public static readonly (string Name, string Template, string Variables)[] All =
    [
        // whitespace control: trim_blocks, lstrip_blocks, -, +, comments, trailing newline
        ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter\n", "{}"),
        ("ws_lstrip_blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc", "{}"),
        ("ws_minus", "a   {%- if true -%}   b   {%- endif -%}   c", "{}"),
        ("ws_plus", "a\n    {%+ if true +%}\nb\n  {%+ endif %}\nc", "{}"),
        ("ws_variables_not_lstripped", "x\n    {{ 1 }}\n    {{- 2 }}\n{{ 3 -}}\n   4", "{}"),
        ("ws_comment", "a\n  {# note #}\nb {#- tight -#} c\n{# end #}", "{}"),
        ("ws_trailing_newlines", "one\n\n", "{}"),
        ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", "{}"),
        ("ws_raw", "{% raw %}{{ not evaluated }}{% endraw %}\n{%- raw -%}  {% x %}  {%- endraw %}|", "{}"),
        ("ws_inline_after_tag", "{% for i in [1,2] %}  {{ i }}{% endfor %}", "{}"),

        // values: Python formatting of numbers, None, booleans, containers
        ("fmt_scalars", "{{ none }} {{ true }} {{ false }} {{ 1 }} {{ 1.0 }} {{ -0.0 }} {{ 2.5e-5 }} {{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}", "{}"),
        ("fmt_containers", "{{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [1, {'x': none}]} }} {{ (1,) }} {{ ('a', 2) }} {{ [] }} {{ {} }}", "{}"),
        ("fmt_string_repr", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', 'back\\\\slash', 'é😀'] }}", "{}"),
        ("fmt_json_numbers", "{{ a }} {{ b }} {{ c }} {{ d }} {{ e }}", """{"a": 1, "b": 1.0, "c": 1e5, "d": -0.5, "e": 12345678901234}"""),
        ("fmt_string_filter", "{{ [1, 'x']|string }}|{{ none|string }}|{{ 3|string }}", "{}"),
        ("fmt_concat_tilde", "{{ 1 ~ 'a' ~ none ~ true ~ [1] }}", "{}"),

        // tojson: transformers' json.dumps with its separators and ensure_ascii=False
        ("json_default", "{{ v|tojson }}", """{"v": {"s": "é \"q\" \\ \n\t\u0001 <&>", "n": [1, 2.5, null, true], "e": {}, "l": []}}"""),
        ("json_indent", "{{ v|tojson(indent=4) }}|{{ v|tojson(indent=2) }}", """{"v": {"a": [1, {"b": []}], "c": {}}}"""),
        ("json_sort_keys", "{{ v|tojson(sort_keys=true) }}", """{"v": {"b": 1, "a": {"d": 2, "c": 3}}}"""),
        ("json_ensure_ascii", "{{ v|tojson(ensure_ascii=true) }}", """{"v": "é😀\u007f"}"""),
        ("json_separators", "{{ v|tojson(separators=(',', ':')) }}", """{"v": {"a": [1, 2]}}"""),
        ("json_scalars", "{{ 'x'|tojson }} {{ 1|tojson }} {{ 1.0|tojson }} {{ none|tojson }} {{ true|tojson }} {{ (1, 2)|tojson }}", "{}"),
        ("json_int_keys", "{{ {1: 'a', 2.5: 'b', true: 'c'}|tojson }}", "{}"),
        ("json_undefined_fails", "{{ missing|tojson }}", "{}"),

        // loops
        ("loop_vars", "{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", """{"items": ["a", "b", "c"]}"""),
        ("loop_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", "{}"),
        ("loop_else", "{% for x in [] %}no{% else %}empty{% endfor %}{% for x in [1] %}one{% else %}no{% endfor %}", "{}"),
        ("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.last }},{% endfor %}", "{}"),
        ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", "{}"),
        ("loop_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}", """{"d": {"z": 1, "a": 2}}"""),
        ("loop_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}[{{ c }}]{% endfor %}", """{"d": {"z": 1, "a": 2}}"""),
        ("loop_nested", "{% for a in [1,2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}", "{}"),
        ("loop_scoping", "{% set x = 0 %}{% for i in [1,2,3] %}{{ x }}{% set x = x + i %}{{ x }},{% endfor %}{{ x }}", "{}"),
        ("loop_cycle", "{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", "{}"),
        ("loop_range_forms", "{{ range(3)|list }}{{ range(2, 5)|list }}{{ range(10, 0, -3)|list }}", "{}"),
        ("loop_undefined_iterable", "{% for x in missing %}x{% else %}none{% endfor %}", "{}"),
        ("loop_none_iterable_fails", "{% for x in none %}x{% endfor %}", "{}"),

        // namespace and set
        ("ns_counter", "{% set ns = namespace(n=0, seen=[]) %}{% for x in [3, 4] %}{% set ns.n = ns.n + x %}{% set ns.seen = ns.seen + [x] %}{% endfor %}{{ ns.n }} {{ ns.seen }}", "{}"),
        ("set_block", "{% set text %}\n  Hello {{ name }}\n{% endset %}[{{ text }}]{% set t2 | trim %}  spaced  {% endset %}[{{ t2 }}]", """{"name": "Ann"}"""),
        ("set_tuple", "{% set a, b = [1, 2] %}{{ b }}{{ a }}", "{}"),
        ("set_in_if_persists", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", "{}"),
        ("set_non_namespace_fails", "{% set d = {} %}{% set d.x = 1 %}", "{}"),

        // macros
        ("macro_defaults", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }} {{ greet(name='C') }}", "{}"),
        ("macro_recursive", "{% macro walk(n) %}{{ n }}{% if n > 0 %}({{ walk(n - 1) }}){% endif %}{% endmacro %}{{ walk(3) }}", "{}"),
        ("macro_sees_globals", "{% set g = 'global' %}{% macro m() %}{{ g }} {{ bos_token }}{% endmacro %}{{ m() }}", """{"bos_token": "<s>"}"""),
        ("macro_missing_arg_undefined", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}", "{}"),
        ("macro_result_is_string", "{% macro m() %}  x  {% endmacro %}[{{ m()|trim }}]{{ m()|length }}", "{}"),

        // filters
        ("flt_trim_case", "[{{ '  a b \n'|trim }}][{{ 'xxhixx'|trim('x') }}]{{ 'MiXed'|lower }}{{ 'MiXed'|upper }}{{ 'hello world'|title }}{{ 'hELLO'|capitalize }}", "{}"),
        ("flt_length", "{{ [1,2,3]|length }}{{ 'héllo😀'|length }}{{ {'a': 1}|length }}{{ missing|length }}{{ [1]|count }}", "{}"),
        ("flt_join", "{{ [1, 'a', none]|join(', ') }}|{{ users|join(',', attribute='name') }}|{{ 'abc'|join('-') }}", """{"users": [{"name": "x"}, {"name": "y"}]}"""),
        ("flt_map_select", "{{ users|map(attribute='name')|list }} {{ users|selectattr('admin')|map(attribute='name')|join }} {{ users|rejectattr('admin')|list|length }} {{ [1,2,3,4]|select('even')|list }} {{ ['a','b']|reject('equalto','a')|list }} {{ ['A','b']|map('lower')|list }}", """{"users": [{"name": "x", "admin": true}, {"name": "y", "admin": false}, {"name": "z"}]}"""),
        ("flt_selectattr_tests", "{{ items|selectattr('type', 'defined')|map(attribute='type')|unique|list }} {{ items|selectattr('type', 'equalto', 'a')|list|length }}", """{"items": [{"type": "a"}, {"x": 1}, {"type": "A"}, {"type": "b"}, {"type": "a"}]}"""),
        ("flt_default", "{{ missing|default('d') }}{{ none|default('d') }}{{ ''|default('d', true) }}{{ 0|d('z', true) }}{{ 'v'|default('d') }}", "{}"),
        ("flt_replace_indent", "{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'line1\nline2\n\nline4'|indent(2) }}|{{ 'x\ny'|indent(3, first=true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'x'|indent('>>', true) }}", "{}"),
        ("flt_first_last_reverse", "{{ [1,2,3]|first }}{{ [1,2,3]|last }}{{ [1,2,3]|reverse|list }}{{ 'abc'|reverse }}{{ 'abc'|first }}", "{}"),
        ("flt_numbers", "{{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 'y'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ [1,2,3]|sum }} {{ [3,1,2]|min }} {{ [3,1,2]|max }}", "{}"),
        ("flt_sort_unique", "{{ ['b', 'A', 'c', 'a']|sort }} {{ ['b', 'A', 'c', 'a']|sort(reverse=true) }} {{ ['b', 'A', 'a', 'B']|unique|list }} {{ [{'n': 2}, {'n': 1}]|sort(attribute='n')|map(attribute='n')|list }} {{ {'b': 1, 'a': 2}|dictsort }}", "{}"),
        ("flt_list_items", "{{ 'ab'|list }} {{ {'x': 1}|list }} {{ {'x': 1}|items|list }} {{ missing|items|list }}", "{}"),
        ("flt_filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}|{% filter trim %}\n  padded  \n{% endfilter %}|", "{}"),

        // tests
        ("tst_types", "{{ none is none }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ 's' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 's' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ true is boolean }}{{ false is false }}{{ 0 is false }}{{ true is true }}", "{}"),
        ("tst_defined", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ x.nope is defined }}{{ none is defined }}", """{"x": {"a": 1}}"""),
        ("tst_compare", "{{ 3 is divisibleby 3 }}{{ 4 is divisibleby(3) }}{{ 2 is even }}{{ 'a' is in 'abc' }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is gt 1 }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1 is sameas 1 }}{{ x is not none }}", """{"x": 0}"""),

        // expressions: operators, precedence, comparisons, membership, slicing
        ("expr_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 + 2 ~ 3 }} {{ 'a' ~ 1 + 2 }} {{ not true or true }} {{ not (true or true) }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", "{}"),
        ("expr_and_or_values", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ none or none }} {{ [] or [1] }}", "{}"),
        ("expr_conditional", "{{ 'a' if true else 'b' }} {{ 'a' if false else 'b' }} [{{ 'a' if false }}] {{ 'x' if 0 else 'y' if 1 else 'z' }}", "{}"),
        ("expr_membership", "{{ 'a' in 'cat' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 1.0 in [1] }} {{ true in [1] }} {{ 'x' in missing }}", "{}"),
        ("expr_equality", "{{ 1 == 1.0 }} {{ true == 1 }} {{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ none == none }} {{ 'a' != 'b' }} {{ missing == missing }} {{ '1' == 1 }}", "{}"),
        ("expr_ordering", "{{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }} {{ 2.5 > 2 }} {{ 'B' < 'a' }}", "{}"),
        ("expr_slicing", "{{ s[1:] }}|{{ s[:-1] }}|{{ s[::-1] }}|{{ s[::2] }}|{{ s[-3:-1] }}|{{ l[1:] }}|{{ l[::-1] }}|{{ l[5:] }}|{{ l[-10:2] }}|{{ s[10:] }}|{{ l[::-2] }}|{{ l[3:0:-1] }}|{{ t[1:] }}", """{"s": "héllo😀", "l": [0, 1, 2, 3, 4], "t": ["x"]}"""),
        ("expr_indexing", "{{ l[0] }}{{ l[-1] }}[{{ l[9] }}]{{ s[0] }}{{ s[-1] }}{{ d['a'] }}{{ d.a }}[{{ d.zz }}][{{ d['zz'] }}]{{ d.get('a') }}{{ d.get('zz', 'dflt') }}[{{ d.get('zz') }}]{{ l.0 }}", """{"l": [1, 2, 3], "s": "xyz", "d": {"a": 1}}"""),
        ("expr_dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d['items'] }} {{ d.items is defined }}", """{"d": {"items": "key-not-method", "b": 2}}"""),
        ("expr_list_concat", "{{ [1] + [2] }} {{ 'ab' * 3 }} {{ [0] * 3 }} {{ 3 * 'x' }}", "{}"),
        ("expr_string_literals", "{{ 'a' 'b' \"c\" }} {{ '\\u00e9\\x41\\101\\n'|tojson }} {{ 'unknown \\d escape' }}", "{}"),
        ("expr_undefined_attr_on_none", "{{ x.split('a') }}", """{"x": null}"""),
        ("expr_add_none_fails", "{{ 'a' + none }}", "{}"),
        ("expr_add_undefined_fails", "{{ 'a' + missing }}", "{}"),
        ("expr_attr_of_undefined_fails", "{{ missing.attr }}", "{}"),
        ("expr_in_none_fails", "{{ 'a' in none }}", "{}"),
        ("expr_division_by_zero", "{{ 1 / 0 }}", "{}"),

        // string methods the templates call
        ("str_strip_family", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ '\nxx\n'.strip('\n') }}][{{ 'abcba'.strip('ab') }}]", """{"s": "  pad\t\n"}"""),
        ("str_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ ''.split(',') }} {{ ''.split() }}", "{}"),
        ("str_predicates", "{{ s.startswith('<tool') }}{{ s.endswith('>') }}{{ s.startswith(('x', '<')) }}{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ''.isdigit() }}", """{"s": "<tool_response>"}"""),
        ("str_misc", "{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}{{ 'hello world'.title() }}{{ 'abc'.replace('b', 'X') }}{{ 'abcabc'.find('c') }}{{ 'abc'.find('z') }}{{ 'abcabc'.rfind('c') }}{{ 'aaa'.count('a') }}{{ '-'.join(['x', 'y']) }}{{ 'a\nb\r\nc'.splitlines() }}", "{}"),

        // globals
        ("glb_raise", "{% if true %}{{ raise_exception('Custom failure: ' ~ 3) }}{% endif %}", "{}"),
        ("glb_strftime", "{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%b %-d %y %A %a %j %p %I') }}", "{}"),
        ("glb_dict", "{{ dict(a=1, b='x') }}", "{}"),

        // a miniature chat template exercising the common shape
        ("chat_shape", "{{- bos_token }}{%- for m in messages %}{%- if m.role == 'system' %}{{- '<|system|>' + m.content|trim }}{%- elif m.role == 'user' %}\n<|user|>{{ m['content'] | trim }}\n{%- else %}\n<|assistant|>{{ m.content }}{{ eos_token }}\n{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|assistant|>{%- endif %}", Messages.TrimEnd('}') + """, "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true}"""),
    ];
}
