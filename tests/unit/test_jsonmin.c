/*
 * Tests of util/jsonmin: the minifier keeps every string (braces, quotes,
 * escapes, escaped backslashes before a closing quote, unicode, inner
 * whitespace) and every number byte for byte; the validator refuses each
 * kind of almost-JSON, which is then left exactly as it was; message
 * contents minify as a whole only when they are an object or array, and
 * otherwise only inside valid ```json fences (CRLF, case, nested and
 * unterminated fences); nesting past the bound is left alone; an 8 MiB
 * document minifies exactly with two allocations; and 2000 random
 * documents minify to the text their generator wrote without whitespace,
 * which cJSON parses to the same value, idempotently.
 */
#include "testutil.h"

#include "util/jsonmin.h"

#include <cJSON.h>
#include <stdbool.h>

#include "util/alloc.h"
#include "util/buf.h"

/* jsonmin_value of in as a C string (caller frees with xfree). */
static char *minify_value(const char *in, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t len = jsonmin_value(in, n, out);
    assert_true(len <= n);
    out[len] = '\0';
    return out;
}

/* Asserts in is valid JSON whose minified form is exactly want. */
static void assert_minifies_to(const char *in, const char *want)
{
    assert_true(jsonmin_is_json(in, strlen(in)));
    char *got = minify_value(in, strlen(in));
    assert_string_equal(got, want);
    xfree(got);
}

/* jsonmin_content of in[0..n) as a C string, with its stats checked
 * against the output (caller frees with xfree). */
static char *content_n(const char *in, size_t n, struct jsonmin_stats *st)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    struct jsonmin_stats local;
    if (st == NULL)
        st = &local;
    assert_int_equal(jsonmin_content(in, n, &b, st), BUF_OK);
    assert_int_equal(st->bytes_before, n);
    assert_int_equal(st->bytes_after, b.len);
    assert_true(b.len <= n);
    assert_int_equal(st->tokens_saved, (n - b.len + 3) / 4);
    return buf_take(&b);
}

static char *content(const char *in)
{
    return content_n(in, strlen(in), NULL);
}

/* Asserts the message content in comes out as want. */
static void assert_content_is(const char *in, const char *want)
{
    char *got = content(in);
    assert_string_equal(got, want);
    xfree(got);
}

/* Asserts in[0..n) is not JSON and that every entry point leaves it
 * byte-identical. */
static void assert_left_alone_n(const char *in, size_t n)
{
    assert_false(jsonmin_is_json(in, n));
    char *out = xmalloc(n + 1);
    assert_int_equal(jsonmin_value(in, n, out), n);
    assert_memory_equal(out, in, n);
    xfree(out);
    struct jsonmin_stats st;
    char *got = content_n(in, n, &st);
    assert_memory_equal(got, in, n);
    assert_int_equal(st.bytes_after, n);
    assert_int_equal(st.tokens_saved, 0);
    xfree(got);
}

static void assert_left_alone(const char *in)
{
    assert_left_alone_n(in, strlen(in));
}

/* Braces, brackets, commas, colons, quotes and runs of spaces inside
 * strings are content: only the whitespace between tokens goes. */
static void strings_keep_structure_characters_and_whitespace(void **state)
{
    (void)state;
    assert_minifies_to("{ \"a { b\" : \"} ] [ , : \\\" x  \\t y\" ,\n \"  \" : [ \" \" ] }",
                       "{\"a { b\":\"} ] [ , : \\\" x  \\t y\",\"  \":[\" \"]}");
    /* escaped quotes around a brace, and an escaped backslash */
    assert_minifies_to("[ \"\\\"{\\\"\" , \"\\\\\" ]", "[\"\\\"{\\\"\",\"\\\\\"]");
}

/* An escaped backslash right before a quote leaves that quote closing the
 * string: a minifier that took \" as an escape here would treat " , " as
 * string content and keep its spaces. */
static void an_escaped_backslash_before_a_quote_closes_the_string(void **state)
{
    (void)state;
    assert_minifies_to("{ \"k\" : \"a\\\\\" , \"j\" : \"b\\\\\\\\\" , \"m\" : \"\\\\\\\"\" }",
                       "{\"k\":\"a\\\\\",\"j\":\"b\\\\\\\\\",\"m\":\"\\\\\\\"\"}");
}

/* Every escape form and raw UTF-8 are copied untouched; lone surrogate
 * escapes are valid syntax (RFC 8259 section 8.2) and stay as written. */
static void escapes_and_unicode_are_copied_untouched(void **state)
{
    (void)state;
    assert_minifies_to("[ \"\\/\\b\\f\\n\\r\\t\" , \"\\u00e9\\uD83D\\uDE00\\u20AC\" ,\n"
                       "  \"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\" ]",
                       "[\"\\/\\b\\f\\n\\r\\t\",\"\\u00e9\\uD83D\\uDE00\\u20AC\","
                       "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"]");
    assert_minifies_to("[ \"\\ud800\" , \"\\uDC00x\" , \"\\udbff\\ud800\" ]",
                       "[\"\\ud800\",\"\\uDC00x\",\"\\udbff\\ud800\"]");
    /* the largest code point and the first after the surrogates */
    assert_minifies_to("[ \"\xf4\x8f\xbf\xbf\xee\x80\x80\" ]",
                       "[\"\xf4\x8f\xbf\xbf\xee\x80\x80\"]");
}

/* Numbers keep their exact spelling: sign, zero, fraction, exponent case
 * and sign, and more digits than a double holds. */
static void numbers_are_copied_byte_for_byte(void **state)
{
    (void)state;
    assert_minifies_to("[ -0 , 0 , 0.5e-10 , -12.250E+3 , 1e5 , 7E0 , -0.0 ,\n"
                       "  100000000000000000000000000001 , 1.000000000000000000001 ]",
                       "[-0,0,0.5e-10,-12.250E+3,1e5,7E0,-0.0,"
                       "100000000000000000000000000001,1.000000000000000000001]");
}

/* Nesting, empty containers (with whitespace inside) and literals. */
static void nested_and_empty_containers_minify(void **state)
{
    (void)state;
    assert_minifies_to(
        "{\n  \"a\" : [ { } , [ ] , [ [\t] ] , { \"b\" : { \"c\" : [ 1 , 2 ] } } ] ,\n"
        "  \"t\" : true , \"f\" : false , \"n\" : null\n}\n",
        "{\"a\":[{},[],[[]],{\"b\":{\"c\":[1,2]}}],\"t\":true,\"f\":false,\"n\":null}");
    assert_minifies_to(" { } ", "{}");
    assert_minifies_to("\r\n[\r\n]\r\n", "[]");
}

/* A scalar is a JSON text (the validator and jsonmin_value accept it),
 * but as a message content it is prose and stays as written, surrounding
 * whitespace included. */
static void top_level_scalars_are_json_but_not_a_json_content(void **state)
{
    (void)state;
    assert_minifies_to(" 42 ", "42");
    assert_minifies_to("\n\"text\"\n", "\"text\"");
    assert_minifies_to("true", "true");
    assert_minifies_to(" null\t", "null");
    assert_content_is(" 42 ", " 42 ");
    assert_content_is("\"text\"\n", "\"text\"\n");
    assert_content_is("null", "null");
}

/* Each almost-JSON is refused and left byte-identical, while the nearest
 * valid text is accepted, so each refusal is for the named defect. */
static void invalid_json_of_every_kind_is_left_alone(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        /* {invalid, the same fixed} */
        {"{ \"a\" : 1 , }", "{ \"a\" : 1 }"},         /* trailing comma in an object */
        {"[ 1 , ]", "[ 1 ]"},                         /* trailing comma in an array */
        {"{ 'a' : 1 }", "{ \"a\" : 1 }"},             /* single quotes */
        {"[ 'x' ]", "[ \"x\" ]"},                     /* single-quoted string */
        {"{ \"a\" : \"b }", "{ \"a\" : \"b\" }"},     /* unterminated string */
        {"[ \"a\tb\" ]", "[ \"a\\tb\" ]"},            /* raw tab in a string */
        {"[ \"a\nb\" ]", "[ \"a\\nb\" ]"},            /* raw newline in a string */
        {"[ \"\x1f\" ]", "[ \"\\u001f\" ]"},          /* raw control character */
        {"[ \"\\x41\" ]", "[ \"\\u0041\" ]"},         /* unknown escape */
        {"[ \"\\u12G4\" ]", "[ \"\\u12F4\" ]"},       /* non-hex in \u */
        {"[ \"\\u12\" ]", "[ \"\\u0012\" ]"},         /* short \u */
        {"[ \"\\\" ]", "[ \"\\\\\" ]"},               /* escape eats the closing quote */
        {"[ 01 ]", "[ 1 ]"},                          /* leading zero */
        {"[ -01 ]", "[ -1 ]"},                        /* leading zero after a sign */
        {"[ 1. ]", "[ 1.0 ]"},                        /* fraction without digits */
        {"[ .5 ]", "[ 0.5 ]"},                        /* fraction without integer */
        {"[ 1e ]", "[ 1e1 ]"},                        /* exponent without digits */
        {"[ 1e+ ]", "[ 1e+1 ]"},                      /* signed exponent without digits */
        {"[ +1 ]", "[ 1 ]"},                          /* plus sign */
        {"[ - ]", "[ -0 ]"},                          /* lone minus */
        {"[ 0x10 ]", "[ 16 ]"},                       /* hex */
        {"[ NaN ]", "[ null ]"},                      /* NaN */
        {"[ Infinity ]", "[ 1e999 ]"},                /* Infinity */
        {"[ True ]", "[ true ]"},                     /* literal case */
        {"[ tru ]", "[ true ]"},                      /* truncated literal */
        {"[ nulls ]", "[ null ]"},                    /* literal with a tail */
        {"{ \"a\" : 1 /* c */ }", "{ \"a\" : 1 }"},   /* block comment */
        {"// c\n[ 1 ]", "\n[ 1 ]"},                   /* line comment */
        {"[ 1 # c\n]", "[ 1 \n]"},                    /* hash comment */
        {"{ a : 1 }", "{ \"a\" : 1 }"},               /* unquoted key */
        {"{ 1 : 2 }", "{ \"1\" : 2 }"},               /* number key */
        {"{ \"a\" 1 }", "{ \"a\" : 1 }"},             /* missing colon */
        {"{ \"a\" }", "{ \"a\" : 0 }"},               /* key without value */
        {"[ 1 2 ]", "[ 1 , 2 ]"},                     /* missing comma */
        {"[ , 1 ]", "[ 1 ]"},                         /* leading comma */
        {"[ 1 }", "[ 1 ]"},                           /* mismatched close */
        {"{ \"a\" : 1 ]", "{ \"a\" : 1 }"},           /* mismatched close */
        {"[ [ 1 ]", "[ [ 1 ] ]"},                     /* unclosed */
        {"[ 1 ] ]", "[ 1 ]"},                         /* extra close */
        {"{ } { }", "[ { } , { } ]"},                 /* two values */
        {"[ 1 ] x", "[ 1 ] "},                        /* trailing garbage */
        {"[ \"\xff\" ]", "[ \"\xc3\xbf\" ]"},         /* invalid UTF-8 byte */
        {"[ \"\xc0\xaf\" ]", "[ \"/\" ]"},            /* overlong encoding */
        {"[ \"\xed\xa0\x80\" ]", "[ \"\\ud800\" ]"},  /* UTF-8-encoded surrogate */
        {"[ \"\xe2\x82\" ]", "[ \"\xe2\x82\xac\" ]"}, /* truncated sequence */
        {"[ \"\xf4\x90\x80\x80\" ]", "[ \"\xf4\x8f\xbf\xbf\" ]"}, /* above U+10FFFF */
        {"[ \"\x80\" ]", "[ \"\xc2\x80\" ]"},                     /* lone continuation byte */
        {"[ \"\xe0\x80\xaf\" ]", "[ \"/\" ]"},                    /* overlong three-byte form */
        {"[ \"\xf0\x80\x80\xaf\" ]", "[ \"/\" ]"},                /* overlong four-byte form */
        {"\xef\xbb\xbf[ 1 ]", "[ 1 ]"},                           /* byte order mark */
        {"[ 1 ]\f", "[ 1 ]\t"}, /* form feed is not JSON whitespace */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_left_alone(cases[i][0]);
        assert_true(jsonmin_is_json(cases[i][1], strlen(cases[i][1])));
    }
    assert_left_alone("");
    assert_left_alone(" \n\t ");
    assert_left_alone("{");
    assert_left_alone("[");
    assert_left_alone("\"");
    assert_left_alone("-");
    /* a NUL inside a string or between tokens */
    assert_left_alone_n("[ \"a\0b\" ]", 9);
    assert_left_alone_n("[ 1 ,\0 2 ]", 10);
    assert_true(jsonmin_is_json("[ \"a\\u0000b\" ]", 14));
}

/* A fenced ```json block with a valid body gets the body minified; the
 * fence lines, the line ending before the closing fence and the prose
 * around it stay. */
static void a_json_fence_with_a_valid_body_is_minified(void **state)
{
    (void)state;
    assert_content_is("Here it is:\n```json\n{\n  \"a\": 1,\n  \"b\": [ 1, 2 ]\n}\n```\nDone.",
                      "Here it is:\n```json\n{\"a\":1,\"b\":[1,2]}\n```\nDone.");
    /* info string in any case and with blanks; closing fence at the very
     * end without a newline; blank lines in the body */
    assert_content_is("a\n```JSON\n[ 1 ]\n```", "a\n```JSON\n[1]\n```");
    assert_content_is("a\n```  Json \t\n\n[ 1 ,\n\n 2 ]\n\n```  \nb",
                      "a\n```  Json \t\n[1,2]\n```  \nb");
    /* an indented fence, as in a list item: the body keeps up to the
     * fence's indentation, so it stays inside the list item */
    assert_content_is("1. result:\n   ```json\n   { \"a\" : 1 }\n   ```\n",
                      "1. result:\n   ```json\n   {\"a\":1}\n   ```\n");
    assert_content_is("- r:\n  ```json\n\n      [ 1 ]\n  ```", "- r:\n  ```json\n  [1]\n  ```");
    assert_content_is("- r:\n  ```json\n[ 1 ]\n  ```", "- r:\n  ```json\n[1]\n  ```");
    /* a scalar body is JSON too: only its whitespace goes */
    assert_content_is("x\n```json\n  \"s  s\"  \n```\n", "x\n```json\n\"s  s\"\n```\n");
    /* a longer fence closes with a fence at least as long */
    assert_content_is("x\n````json\n[ 1 ]\n`````\n", "x\n````json\n[1]\n`````\n");
}

/* A ```json block whose body is not valid JSON, or empty, stays as it was,
 * and the blocks after it are still found. */
static void a_json_fence_with_an_invalid_body_is_left_alone(void **state)
{
    (void)state;
    assert_left_alone("x\n```json\n{ \"a\" : 1 , }\n```\ny");
    assert_left_alone("x\n```json\n```\ny");
    assert_left_alone("x\n```json\n   \n```\ny");
    assert_left_alone("x\n```json\n{ \"a\" : 1 }\n// comment\n```\n");
    assert_content_is("```json\n[ 1 , ]\n```\nand\n```json\n[ 2 , 3 ]\n```\n",
                      "```json\n[ 1 , ]\n```\nand\n```json\n[2,3]\n```\n");
}

/* Two valid blocks are both minified, and the text between them kept. */
static void two_json_fences_are_both_minified(void **state)
{
    (void)state;
    assert_content_is(
        "A:\n```json\n{ \"a\" : 1 }\n```\nB { not json }:\n```json\n[ true , null ]\n```\n"
        "end",
        "A:\n```json\n{\"a\":1}\n```\nB { not json }:\n```json\n[true,null]\n```\nend");
}

/* A fence inside a JSON string is part of the string: in a fenced body,
 * and in a whole content that is JSON. */
static void a_fence_inside_a_json_string_is_string_content(void **state)
{
    (void)state;
    assert_content_is("see\n```json\n{ \"md\" : \"```json\\n{ }\\n```\" , \"x\" : 1 }\n```\n",
                      "see\n```json\n{\"md\":\"```json\\n{ }\\n```\",\"x\":1}\n```\n");
    assert_content_is("{ \"md\" : \"text\\n```json\\n[ 1 ]\\n```\\n\" }",
                      "{\"md\":\"text\\n```json\\n[ 1 ]\\n```\\n\"}");
}

/* An unterminated fence runs to the end (CommonMark), so nothing after its
 * opening line changes, even a later complete-looking block. */
static void an_unterminated_fence_is_left_alone(void **state)
{
    (void)state;
    assert_left_alone("x\n```json\n{ \"a\" : 1 }\n");
    assert_left_alone("x\n```json\n{ \"a\" : 1 }");
    assert_left_alone("x\n```json");
    assert_left_alone("x\n```python\nprint(1)\n```json\n[ 1 ]\n");
}

/* Only the info string "json" counts: bare fences, other languages,
 * inline code and near misses stay as they are, JSON body or not. */
static void fences_that_are_not_json_are_left_alone(void **state)
{
    (void)state;
    assert_left_alone("x\n```\n{ \"a\" : 1 }\n```\n");
    assert_left_alone("x\n```python\n{ \"a\" : 1 }\n```\n");
    assert_left_alone("x\n```jsonc\n{ \"a\" : 1 }\n```\n");
    assert_left_alone("x\n```json5\n{ \"a\" : 1 }\n```\n");
    assert_left_alone("x\n``json\n{ \"a\" : 1 }\n``\n");
    assert_left_alone("x ```json { \"a\" : 1 }``` y\n");
    assert_left_alone("x\n```json```\n{ \"a\" : 1 }\n```\n");
    assert_left_alone("x\n~~~json\n{ \"a\" : 1 }\n~~~\n");
    /* a line opening with inline code is not a fence, so the real block
     * after it is found */
    assert_content_is("```json``` is inline code\n```json\n[ 1 ]\n```\n",
                      "```json``` is inline code\n```json\n[1]\n```\n");
}

/* A ```json line inside another fenced block is that block's text (the
 * outer block only closes at a bare fence), so it is not minified. */
static void nested_fences_follow_commonmark(void **state)
{
    (void)state;
    /* a four-backtick markdown block shows a json block as an example */
    assert_left_alone("Write:\n````markdown\n```json\n{ \"a\" : 1 }\n```\n````\n");
    /* a closing fence with an info string does not close; the bare one
     * after it does, and the body in between is not JSON */
    assert_left_alone("```json\n[ 1 ]\n```json\n```\n");
    /* a shorter fence does not close a longer one: the ``` line belongs
     * to the four-backtick block, whose own close lets the json block
     * after it be found */
    assert_content_is("````md\n```\n````\n```json\n[ 1 ]\n```\n",
                      "````md\n```\n````\n```json\n[1]\n```\n");
    /* after a bare block closes, the next json block is found */
    assert_content_is("```\n```json\n```\n```json\n[ 1 ]\n```\n",
                      "```\n```json\n```\n```json\n[1]\n```\n");
}

/* CRLF line endings: fence lines are found, the CRLF before the closing
 * fence is kept, and the CRs inside the body are whitespace. */
static void crlf_line_endings_are_kept(void **state)
{
    (void)state;
    assert_content_is("a\r\n```json\r\n{\r\n  \"a\" : 1\r\n}\r\n```\r\nb",
                      "a\r\n```json\r\n{\"a\":1}\r\n```\r\nb");
    assert_content_is("```json \r\n[ 1 ]\r\n```\r\n", "```json \r\n[1]\r\n```\r\n");
}

/* A whole content that is an object or array is minified, whitespace
 * around it included; one that merely starts like JSON is prose. */
static void a_whole_json_content_is_minified(void **state)
{
    (void)state;
    assert_content_is("\n  { \"a\" : [ 1 , 2 ] }  \n", "{\"a\":[1,2]}");
    assert_content_is("[\n  \"x\"\n]", "[\"x\"]");
    assert_left_alone("[1] Smith, J. (2020) { et al }");
    assert_left_alone("{ \"a\" : 1 } and then some prose");
    /* prose starting with a bracket still gets its fences minified */
    assert_content_is("[note]\n```json\n[ 1 ]\n```\n", "[note]\n```json\n[1]\n```\n");
}

/* Every proper prefix of a valid document is refused and left alone. Each
 * prefix is an exact-size heap copy, so under ASan and valgrind a read past
 * the end (a token cut anywhere: escape, \u, UTF-8 sequence, literal,
 * number) is caught rather than stopped by a NUL. */
static void every_truncation_is_refused_without_reading_past_the_end(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{ \"a\" : [ true , false , null , -1.5e+3 , 0 , \"\\u00e9\\ud83d\\ude00 "
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\\\\\\"\\n\" , { } , [ ] ] }",
        "[\"\xf4\x8f\xbf\xbf\",12,\"x\",1E-2,\"\\/\"]",
    };
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        size_t n = strlen(docs[d]);
        assert_true(jsonmin_is_json(docs[d], n));
        for (size_t k = 1; k < n; k++) {
            char *cut = xmalloc(k);
            memcpy(cut, docs[d], k);
            assert_left_alone_n(cut, k);
            xfree(cut);
        }
    }
    /* a fenced reply cut anywhere: the body is minified only once the
     * closing fence is complete */
    static const char fenced[] = "a\n```json\n[ 1 ]\n```";
    size_t n = strlen(fenced);
    for (size_t k = 1; k <= n; k++) {
        char *cut = xmalloc(k);
        memcpy(cut, fenced, k);
        char *got = content_n(cut, k, NULL);
        if (k == n)
            assert_string_equal(got, "a\n```json\n[1]\n```");
        else
            assert_memory_equal(got, cut, k);
        xfree(got);
        xfree(cut);
    }
}

/* Builds `depth` nested arrays around a 0 with spaces, as a C string. */
static char *nested(size_t depth)
{
    char *s = xmalloc(depth * 4 + 2);
    size_t k = 0;
    for (size_t i = 0; i < depth; i++) {
        s[k++] = '[';
        s[k++] = ' ';
    }
    s[k++] = '0';
    for (size_t i = 0; i < depth; i++) {
        s[k++] = ' ';
        s[k++] = ']';
    }
    s[k] = '\0';
    return s;
}

/* Nesting up to JSONMIN_MAX_DEPTH is JSON; one more level, or far more (no
 * recursion to overflow), is left alone. Objects count like arrays. */
static void nesting_beyond_the_bound_is_left_alone(void **state)
{
    (void)state;
    char *ok = nested(JSONMIN_MAX_DEPTH);
    assert_true(jsonmin_is_json(ok, strlen(ok)));
    char *got = content(ok);
    assert_int_equal(strlen(got), JSONMIN_MAX_DEPTH * 2 + 1); /* spaces gone */
    assert_int_equal(got[JSONMIN_MAX_DEPTH], '0');
    xfree(got);
    xfree(ok);

    char *deep = nested(JSONMIN_MAX_DEPTH + 1);
    assert_left_alone(deep);
    xfree(deep);
    char *deeper = nested(200000);
    assert_left_alone(deeper);
    xfree(deeper);

    /* objects and arrays alternating, 1000 and 1001 containers deep */
    struct buf b;
    buf_init(&b, SIZE_MAX);
    for (int i = 0; i < JSONMIN_MAX_DEPTH; i++)
        assert_int_equal(buf_puts(&b, i % 2 ? "[ " : "{ \"k\" : "), BUF_OK);
    for (int i = JSONMIN_MAX_DEPTH - 1; i >= 0; i--)
        assert_int_equal(buf_puts(&b, i % 2 ? " ]" : " }"), BUF_OK);
    assert_true(jsonmin_is_json(b.data, b.len));
    buf_reset(&b);
    for (int i = 0; i < JSONMIN_MAX_DEPTH + 1; i++)
        assert_int_equal(buf_puts(&b, i % 2 ? "[ " : "{ \"k\" : "), BUF_OK);
    assert_int_equal(buf_puts(&b, "1"), BUF_OK);
    for (int i = JSONMIN_MAX_DEPTH; i >= 0; i--)
        assert_int_equal(buf_puts(&b, i % 2 ? " ]" : " }"), BUF_OK);
    assert_left_alone_n(b.data, b.len);
    buf_free(&b);
}

/* An 8 MiB pretty-printed document comes out exactly as the same records
 * written without whitespace, with two allocations (the scratch block and
 * the output) however large it is. */
static void a_huge_document_minifies_exactly_with_two_allocations(void **state)
{
    (void)state;
    struct buf pretty, want;
    buf_init(&pretty, SIZE_MAX);
    buf_init(&want, SIZE_MAX);
    assert_int_equal(buf_puts(&pretty, "{\n  \"items\": [\n"), BUF_OK);
    assert_int_equal(buf_puts(&want, "{\"items\":["), BUF_OK);
    for (unsigned i = 0; pretty.len < 8u << 20; i++) {
        if (i > 0) {
            assert_int_equal(buf_puts(&pretty, ",\n"), BUF_OK);
            assert_int_equal(buf_puts(&want, ","), BUF_OK);
        }
        assert_int_equal(
            buf_printf(&pretty,
                       "    {\n      \"id\": %u,\n      \"name\": \"item %u { } [ ] \\\"q\\\" "
                       "\\\\\",\n      \"score\": -%u.%02ue+%u,\n"
                       "      \"tags\": [ \"a b\", \"\\u00e9\" ],\n"
                       "      \"ok\": %s\n    }",
                       i, i, i % 97, i % 100, i % 9, i % 2 ? "true" : "null"),
            BUF_OK);
        assert_int_equal(buf_printf(&want,
                                    "{\"id\":%u,\"name\":\"item %u { } [ ] \\\"q\\\" \\\\\","
                                    "\"score\":-%u.%02ue+%u,\"tags\":[\"a b\",\"\\u00e9\"],"
                                    "\"ok\":%s}",
                                    i, i, i % 97, i % 100, i % 9, i % 2 ? "true" : "null"),
                         BUF_OK);
    }
    assert_int_equal(buf_puts(&pretty, "\n  ]\n}\n"), BUF_OK);
    assert_int_equal(buf_puts(&want, "]}"), BUF_OK);

    struct buf out;
    buf_init(&out, SIZE_MAX);
    struct jsonmin_stats st;
    unsigned long before = alloc_count();
    assert_int_equal(jsonmin_content(pretty.data, pretty.len, &out, &st), BUF_OK);
    assert_int_equal(alloc_count() - before, 2);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    assert_int_equal(st.bytes_before, pretty.len);
    assert_int_equal(st.bytes_after, want.len);

    /* the same document in a ```json fence */
    buf_reset(&out);
    struct buf fenced;
    buf_init(&fenced, SIZE_MAX);
    assert_int_equal(buf_puts(&fenced, "Result:\n```json\n"), BUF_OK);
    assert_int_equal(buf_append(&fenced, pretty.data, pretty.len), BUF_OK);
    assert_int_equal(buf_puts(&fenced, "```\n"), BUF_OK);
    before = alloc_count();
    assert_int_equal(jsonmin_content(fenced.data, fenced.len, &out, &st), BUF_OK);
    assert_true(alloc_count() - before <= 2);
    assert_int_equal(out.len, want.len + strlen("Result:\n```json\n\n```\n"));
    assert_memory_equal(out.data, "Result:\n```json\n", 16);
    assert_memory_equal(out.data + 16, want.data, want.len);
    assert_string_equal(out.data + 16 + want.len, "\n```\n");

    buf_free(&fenced);
    buf_free(&out);
    buf_free(&pretty);
    buf_free(&want);
}

/* The stats: bytes before and after and tokens saved rounded up at four
 * bytes a token; the output is appended to what out already holds; st may
 * be NULL. */
static void stats_count_bytes_and_estimate_tokens(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1000);
    assert_int_equal(buf_puts(&b, "prefix|"), BUF_OK);
    struct jsonmin_stats st;
    /* 11 bytes -> 7 ({"a":1}): 4 saved, one token */
    assert_int_equal(jsonmin_content("{ \"a\" : 1 }", 11, &b, &st), BUF_OK);
    assert_string_equal(buf_cstr(&b), "prefix|{\"a\":1}");
    assert_int_equal(st.bytes_before, 11);
    assert_int_equal(st.bytes_after, 7);
    assert_int_equal(st.tokens_saved, 1);
    /* 18 bytes -> 5 ([1,2]): 13 saved, four tokens (13 / 4 rounded up) */
    buf_reset(&b);
    assert_int_equal(jsonmin_content("[\n        1,\n  2 ]", 18, &b, &st), BUF_OK);
    assert_string_equal(buf_cstr(&b), "[1,2]");
    assert_int_equal(st.tokens_saved, 4);
    /* nothing to do: same bytes, no tokens */
    buf_reset(&b);
    assert_int_equal(jsonmin_content("plain text", 10, &b, &st), BUF_OK);
    assert_int_equal(st.bytes_after, 10);
    assert_int_equal(st.tokens_saved, 0);
    /* empty content and no stats */
    buf_reset(&b);
    assert_int_equal(jsonmin_content("", 0, &b, &st), BUF_OK);
    assert_int_equal(st.bytes_before, 0);
    assert_int_equal(st.bytes_after, 0);
    assert_int_equal(jsonmin_content("[ ]", 3, &b, NULL), BUF_OK);
    assert_string_equal(buf_cstr(&b), "[]");
    buf_free(&b);
}

/* Failures come back as buf results: an output over out's bound resets out
 * (buf's rule), a failed scratch allocation leaves out untouched. */
static void buffer_and_allocation_failures_are_reported(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "abc"), BUF_OK);
    assert_int_equal(jsonmin_content("{ \"ab\" : 1 }", 12, &b, NULL), BUF_TOO_BIG);
    assert_int_equal(b.len, 0);
    /* the minified form fits where the original would not */
    assert_int_equal(jsonmin_content("{ \"ab\" : 1 }", 12, &b, NULL), BUF_OK);
    assert_string_equal(buf_cstr(&b), "{\"ab\":1}");

    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "keep"), BUF_OK);
    alloc_fail_after(1, 0);
    assert_int_equal(jsonmin_content("[ 1 ]", 5, &b, NULL), BUF_NO_MEM);
    alloc_fail_after(0, 0);
    assert_string_equal(buf_cstr(&b), "keep");
    buf_free(&b);
}

/* --- the property test: random documents from a seeded generator --- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

/* A document being generated twice: with random whitespace (doc) and
 * without any (min), which is what the minifier must produce. */
struct gen {
    struct rng rng;
    struct buf doc, min;
};

static void gen_both(struct gen *g, const char *s)
{
    assert_int_equal(buf_puts(&g->doc, s), BUF_OK);
    assert_int_equal(buf_puts(&g->min, s), BUF_OK);
}

/* Whitespace between tokens: usually none, sometimes a run of all four
 * kinds, sometimes a pretty-printer's newline and indentation. */
static void gen_ws(struct gen *g)
{
    static const char ws[] = {' ', '\t', '\n', '\r'};
    switch (rng_below(&g->rng, 4)) {
    case 0:
        return;
    case 1:
        assert_int_equal(buf_puts(&g->doc, "\n        "), BUF_OK);
        return;
    default:
        for (unsigned k = 1 + rng_below(&g->rng, 4); k > 0; k--)
            assert_int_equal(buf_putc(&g->doc, ws[rng_below(&g->rng, 4)]), BUF_OK);
    }
}

static void gen_string(struct gen *g)
{
    static const char *const pieces[] = {
        "a",
        "Z",
        " ",
        "  ",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "```",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u00e9",
        "\\u20AC",
        "\\uD83D\\uDE00",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "'",
        "#",
        "//",
        "/*",
        "0",
        "-1e5",
        "true",
    };
    gen_both(g, "\"");
    for (unsigned k = rng_below(&g->rng, 12); k > 0; k--)
        gen_both(g, pieces[rng_below(&g->rng, sizeof pieces / sizeof pieces[0])]);
    /* long plain runs exercise the word-at-a-time scan */
    if (rng_below(&g->rng, 4) == 0)
        gen_both(g, "the quick brown fox jumps over the lazy dog");
    gen_both(g, "\"");
}

static void gen_number(struct gen *g)
{
    char num[64];
    unsigned a = rng_below(&g->rng, 100000);
    switch (rng_below(&g->rng, 5)) {
    case 0:
        snprintf(num, sizeof num, "%u", a);
        break;
    case 1:
        snprintf(num, sizeof num, "-%u", a);
        break;
    case 2:
        snprintf(num, sizeof num, "%u.%03u", a, rng_below(&g->rng, 1000));
        break;
    case 3:
        snprintf(num, sizeof num, "-%u.5%c%c%u", a % 10, rng_below(&g->rng, 2) ? 'e' : 'E',
                 "+-0"[rng_below(&g->rng, 3)], rng_below(&g->rng, 30));
        break;
    default:
        snprintf(num, sizeof num, "%ue%u", a % 10, rng_below(&g->rng, 20));
        break;
    }
    /* "%c" with '0' writes a digit, not a sign: still a valid exponent */
    gen_both(g, num);
}

static void gen_value(struct gen *g, unsigned depth)
{
    static const char *const literals[] = {"true", "false", "null"};
    /* kinds 0..3 are scalars, 4..6 arrays, 7 objects; no containers past
     * depth 6 (cJSON's own limit is 1000) */
    switch (rng_below(&g->rng, depth < 6 ? 8 : 4)) {
    case 0:
    case 1:
        gen_string(g);
        return;
    case 2:
        gen_number(g);
        return;
    case 3:
        gen_both(g, literals[rng_below(&g->rng, 3)]);
        return;
    case 4:
    case 5:
    case 6: {
        gen_both(g, "[");
        unsigned n = rng_below(&g->rng, 5);
        gen_ws(g);
        for (unsigned i = 0; i < n; i++) {
            if (i > 0) {
                gen_both(g, ",");
                gen_ws(g);
            }
            gen_value(g, depth + 1);
            gen_ws(g);
        }
        gen_both(g, "]");
        return;
    }
    default: {
        gen_both(g, "{");
        unsigned n = rng_below(&g->rng, 5);
        gen_ws(g);
        for (unsigned i = 0; i < n; i++) {
            char key[32];
            if (i > 0) {
                gen_both(g, ",");
                gen_ws(g);
            }
            /* unique keys: cJSON_Compare looks members up by name */
            snprintf(key, sizeof key, "\"k%u { \\\" }\"", i);
            gen_both(g, key);
            gen_ws(g);
            gen_both(g, ":");
            gen_ws(g);
            gen_value(g, depth + 1);
            gen_ws(g);
        }
        gen_both(g, "}");
        return;
    }
    }
}

/* True when s[0..n) has a JSON whitespace byte outside its strings
 * (written apart from the minifier: a two-state walk over quotes). */
static bool has_ws_outside_strings(const char *s, size_t n)
{
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        if (in) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in = false;
        } else if (s[i] == '"') {
            in = true;
        } else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
            return true;
        }
    }
    return false;
}

/* For 2000 seeded random documents with random whitespace: each is valid,
 * minifies to exactly the generator's whitespace-free text (so no
 * whitespace outside strings, strings and numbers untouched), cJSON parses
 * both to equal values, minifying again changes nothing, and as a content
 * an object or array minifies the same way. */
static void random_documents_minify_to_equal_values(void **state)
{
    (void)state;
    struct gen g = {.rng = {UINT64_C(0x9E3779B97F4A7C15)}};
    buf_init(&g.doc, SIZE_MAX);
    buf_init(&g.min, SIZE_MAX);
    for (int iter = 0; iter < 2000; iter++) {
        buf_reset(&g.doc);
        buf_reset(&g.min);
        gen_ws(&g);
        gen_value(&g, 0);
        gen_ws(&g);
        const char *doc = buf_cstr(&g.doc);
        size_t n = g.doc.len;
        assert_true(jsonmin_is_json(doc, n));

        char *min = minify_value(doc, n);
        size_t m = strlen(min);
        assert_string_equal(min, buf_cstr(&g.min));
        assert_false(has_ws_outside_strings(min, m));

        cJSON *a = cJSON_Parse(doc);
        cJSON *b = cJSON_Parse(min);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(cJSON_Compare(a, b, 1));
        cJSON_Delete(a);
        cJSON_Delete(b);

        char *twice = minify_value(min, m);
        assert_string_equal(twice, min);
        xfree(twice);

        char *c = content_n(doc, n, NULL);
        if (min[0] == '{' || min[0] == '[')
            assert_string_equal(c, min);
        else
            assert_string_equal(c, doc);
        xfree(c);
        xfree(min);
    }
    buf_free(&g.doc);
    buf_free(&g.min);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strings_keep_structure_characters_and_whitespace),
        cmocka_unit_test(an_escaped_backslash_before_a_quote_closes_the_string),
        cmocka_unit_test(escapes_and_unicode_are_copied_untouched),
        cmocka_unit_test(numbers_are_copied_byte_for_byte),
        cmocka_unit_test(nested_and_empty_containers_minify),
        cmocka_unit_test(top_level_scalars_are_json_but_not_a_json_content),
        cmocka_unit_test(invalid_json_of_every_kind_is_left_alone),
        cmocka_unit_test(a_json_fence_with_a_valid_body_is_minified),
        cmocka_unit_test(a_json_fence_with_an_invalid_body_is_left_alone),
        cmocka_unit_test(two_json_fences_are_both_minified),
        cmocka_unit_test(a_fence_inside_a_json_string_is_string_content),
        cmocka_unit_test(an_unterminated_fence_is_left_alone),
        cmocka_unit_test(fences_that_are_not_json_are_left_alone),
        cmocka_unit_test(nested_fences_follow_commonmark),
        cmocka_unit_test(crlf_line_endings_are_kept),
        cmocka_unit_test(a_whole_json_content_is_minified),
        cmocka_unit_test(every_truncation_is_refused_without_reading_past_the_end),
        cmocka_unit_test(nesting_beyond_the_bound_is_left_alone),
        cmocka_unit_test(a_huge_document_minifies_exactly_with_two_allocations),
        cmocka_unit_test(stats_count_bytes_and_estimate_tokens),
        cmocka_unit_test(buffer_and_allocation_failures_are_reported),
        cmocka_unit_test(random_documents_minify_to_equal_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
