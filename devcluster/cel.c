/*
 * cel.c: the CEL subset of cel.h, for CRD validation rules.
 *
 * A rule is parsed once into a tree (recursive descent, CEL's precedence:
 * ?: below ||, below &&, below relations and `in`, below + -, below * / %,
 * below unary ! -, below member access, calls and indexing) and evaluated
 * against jansson values: self and oldSelf are the object's value at the
 * schema node that carries the rule, as the API server passes them.
 *
 * Values are JSON values: objects are CEL maps, arrays lists, integers
 * int, reals double. Errors follow CEL where a rule can see them: a field
 * that is absent is "no such key: f", a wrong operand "no such overload",
 * and && and || are commutative over errors (false && error is false,
 * true || error is true, whatever the order). Equality of an int and a
 * double compares their values, of different types otherwise is false.
 */
#include "cel.h"

#include "buf.h"
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum node_kind {
    N_LIT,    /* lit */
    N_IDENT,  /* name */
    N_SELECT, /* a.name */
    N_INDEX,  /* a[b] */
    N_HAS,    /* has(a.name): a, name */
    N_CALL,   /* name(args) or a.name(args) (a may be NULL) */
    N_MACRO,  /* a.name(var, b): all, exists, exists_one */
    N_NOT,    /* !a */
    N_NEG,    /* -a */
    N_BINARY, /* a op b */
    N_AND,
    N_OR,
    N_COND, /* a ? b : c */
    N_LIST, /* [args] */
};

typedef struct node {
    enum node_kind kind;
    char op[4];
    char *name;
    char *var;
    json_t *lit;
    struct node *a, *b, *c;
    struct node **args;
    int nargs;
} node;

struct dc_cel_rule {
    node *root;
    bool old_self;
};

/* ---- lexer and parser ---- */

enum tok_kind { T_END, T_IDENT, T_INT, T_DOUBLE, T_STRING, T_PUNCT };

typedef struct parser {
    const char *src;
    size_t pos;
    enum tok_kind tk;
    char punct[4];
    char *text; /* identifier or decoded string */
    long long ival;
    double dval;
    size_t tok_start;
    char *err;
    size_t cap;
    bool failed;
    bool old_self;
    int depth;
} parser;

static void fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
fail(parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->cap, "%s at offset %zu", msg, p->tok_start);
}

static void
next(parser *p)
{
    free(p->text);
    p->text = NULL;
    const char *s = p->src;
    while (isspace((unsigned char)s[p->pos]))
        p->pos++;
    p->tok_start = p->pos;
    char ch = s[p->pos];
    if (!ch) {
        p->tk = T_END;
        return;
    }
    if (isalpha((unsigned char)ch) || ch == '_') {
        size_t st = p->pos;
        while (isalnum((unsigned char)s[p->pos]) || s[p->pos] == '_')
            p->pos++;
        p->text = strndup(s + st, p->pos - st);
        p->tk = T_IDENT;
        return;
    }
    if (isdigit((unsigned char)ch) || (ch == '.' && isdigit((unsigned char)s[p->pos + 1]))) {
        char *end;
        errno = 0;
        if (ch == '0' && (s[p->pos + 1] == 'x' || s[p->pos + 1] == 'X')) {
            p->ival = strtoll(s + p->pos, &end, 16);
            p->tk = T_INT;
        } else {
            size_t st = p->pos;
            bool real = false;
            size_t i = st;
            while (isdigit((unsigned char)s[i]))
                i++;
            if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
                real = true;
            if (real) {
                p->dval = strtod(s + st, &end);
                p->tk = T_DOUBLE;
            } else {
                p->ival = strtoll(s + st, &end, 10);
                p->tk = T_INT;
            }
        }
        if (errno == ERANGE)
            fail(p, "number out of range");
        p->pos = (size_t)(end - s);
        if (p->tk == T_INT && (s[p->pos] == 'u' || s[p->pos] == 'U'))
            p->pos++; /* uint literals: ints here */
        return;
    }
    if (ch == '\'' || ch == '"') {
        char q = ch;
        if (s[p->pos + 1] == q && s[p->pos + 2] == q) {
            fail(p, "triple-quoted strings are not supported");
            p->tk = T_END;
            return;
        }
        lb_buf b = LB_BUF_INIT;
        p->pos++;
        while (s[p->pos] && s[p->pos] != q) {
            char c = s[p->pos++];
            if (c == '\\') {
                char e = s[p->pos++];
                switch (e) {
                case 'n':
                    c = '\n';
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case '\\':
                case '\'':
                case '"':
                case '`':
                case '?':
                    c = e;
                    break;
                default:
                    fail(p, "unsupported escape \\%c", e ? e : '0');
                    lb_buf_free(&b);
                    p->tk = T_END;
                    return;
                }
            }
            lb_buf_append(&b, &c, 1);
        }
        if (s[p->pos] != q) {
            fail(p, "unterminated string");
            lb_buf_free(&b);
            p->tk = T_END;
            return;
        }
        p->pos++;
        if (!b.data)
            lb_buf_append_str(&b, "");
        p->text = lb_buf_steal(&b, NULL);
        p->tk = T_STRING;
        return;
    }
    static const char *const two[] = {"==", "!=", "<=", ">=", "&&", "||"};
    for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
        if (strncmp(s + p->pos, two[i], 2) == 0) {
            snprintf(p->punct, sizeof p->punct, "%s", two[i]);
            p->pos += 2;
            p->tk = T_PUNCT;
            return;
        }
    }
    if (strchr("<>!+-*/%?:.,()[]", ch)) {
        p->punct[0] = ch;
        p->punct[1] = '\0';
        p->pos++;
        p->tk = T_PUNCT;
        return;
    }
    fail(p, "unexpected character '%c'", ch);
    p->tk = T_END;
}

static bool
is_punct(parser *p, const char *s)
{
    return p->tk == T_PUNCT && strcmp(p->punct, s) == 0;
}

static bool
accept(parser *p, const char *s)
{
    if (!is_punct(p, s))
        return false;
    next(p);
    return true;
}

static void
expect(parser *p, const char *s)
{
    if (!accept(p, s))
        fail(p, "expected '%s'", s);
}

static node *
mk(enum node_kind kind)
{
    node *n = calloc(1, sizeof *n);
    if (n)
        n->kind = kind;
    return n;
}

static void
node_free(node *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->var);
    json_decref(n->lit);
    node_free(n->a);
    node_free(n->b);
    node_free(n->c);
    for (int i = 0; i < n->nargs; i++)
        node_free(n->args[i]);
    free(n->args);
    free(n);
}

static node *parse_expr(parser *p);

/* Arguments up to ')' (the '(' already taken). */
static void
parse_args(parser *p, node *n, const char *close)
{
    if (accept(p, close))
        return;
    for (;;) {
        node *a = parse_expr(p);
        if (!a)
            return;
        node **grown = realloc(n->args, sizeof(node *) * (size_t)(n->nargs + 1));
        if (!grown) {
            node_free(a);
            fail(p, "out of memory");
            return;
        }
        n->args = grown;
        n->args[n->nargs++] = a;
        if (accept(p, close))
            return;
        if (!accept(p, ",")) {
            fail(p, "expected ',' or '%s'", close);
            return;
        }
    }
}

static bool
known_function(const char *name)
{
    static const char *const fns[] = {"size", "int", "string", "double"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (strcmp(fns[i], name) == 0)
            return true;
    return false;
}

static bool
known_method(const char *name)
{
    static const char *const fns[] = {"size",    "startsWith", "endsWith",  "contains",
                                      "matches", "lowerAscii", "upperAscii"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (strcmp(fns[i], name) == 0)
            return true;
    return false;
}

static node *
parse_primary(parser *p)
{
    node *n = NULL;
    if (p->failed)
        return NULL;
    if (p->tk == T_INT || p->tk == T_DOUBLE || p->tk == T_STRING) {
        n = mk(N_LIT);
        if (!n)
            return NULL;
        n->lit = p->tk == T_INT      ? json_integer(p->ival)
                 : p->tk == T_DOUBLE ? json_real(p->dval)
                                     : json_string(p->text);
        if (!n->lit)
            fail(p, "string is not UTF-8");
        next(p);
        return n;
    }
    if (p->tk == T_IDENT) {
        char *name = p->text;
        p->text = NULL;
        next(p);
        if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0 || strcmp(name, "null") == 0) {
            n = mk(N_LIT);
            if (n)
                n->lit = name[0] == 't' ? json_true() : name[0] == 'f' ? json_false() : json_null();
            free(name);
            return n;
        }
        if (accept(p, "(")) {
            if (strcmp(name, "has") == 0) {
                free(name);
                node *arg = parse_expr(p);
                expect(p, ")");
                if (!arg || arg->kind != N_SELECT) {
                    if (!p->failed)
                        fail(p, "has() needs a field selection");
                    node_free(arg);
                    return NULL;
                }
                n = mk(N_HAS);
                if (n) {
                    n->a = arg->a;
                    n->name = arg->name;
                    arg->a = NULL;
                    arg->name = NULL;
                }
                node_free(arg);
                return n;
            }
            if (!known_function(name)) {
                fail(p, "unsupported function %s()", name);
                free(name);
                return NULL;
            }
            n = mk(N_CALL);
            if (!n) {
                free(name);
                return NULL;
            }
            n->name = name;
            parse_args(p, n, ")");
            if (n->nargs != 1)
                fail(p, "%s() takes one argument", n->name);
            return n;
        }
        /* identifiers other than self and oldSelf are the variables of
         * all()/exists(), looked up at evaluation */
        if (strcmp(name, "oldSelf") == 0)
            p->old_self = true;
        n = mk(N_IDENT);
        if (n)
            n->name = name;
        else
            free(name);
        return n;
    }
    if (accept(p, "(")) {
        n = parse_expr(p);
        expect(p, ")");
        return n;
    }
    if (accept(p, "[")) {
        n = mk(N_LIST);
        if (n)
            parse_args(p, n, "]");
        return n;
    }
    if (p->tk == T_END)
        fail(p, "unexpected end of rule");
    else if (p->tk == T_PUNCT && strcmp(p->punct, "{") == 0)
        fail(p, "map literals are not supported");
    else
        fail(p, "unexpected '%s'", p->tk == T_PUNCT ? p->punct : "token");
    return NULL;
}

static node *
parse_member(parser *p)
{
    node *n = parse_primary(p);
    while (n && !p->failed) {
        if (accept(p, ".")) {
            if (p->tk != T_IDENT) {
                fail(p, "expected a field name after '.'");
                break;
            }
            char *name = p->text;
            p->text = NULL;
            next(p);
            if (accept(p, "(")) {
                bool macro = strcmp(name, "all") == 0 || strcmp(name, "exists") == 0 ||
                             strcmp(name, "exists_one") == 0;
                if (macro) {
                    if (p->tk != T_IDENT) {
                        fail(p, "%s() needs a variable name", name);
                        free(name);
                        break;
                    }
                    node *m = mk(N_MACRO);
                    if (!m) {
                        free(name);
                        break;
                    }
                    m->name = name;
                    m->var = p->text;
                    p->text = NULL;
                    next(p);
                    expect(p, ",");
                    m->a = n;
                    m->b = parse_expr(p);
                    expect(p, ")");
                    n = m;
                    continue;
                }
                if (!known_method(name)) {
                    fail(p, "unsupported function %s()", name);
                    free(name);
                    break;
                }
                node *c = mk(N_CALL);
                if (!c) {
                    free(name);
                    break;
                }
                c->name = name;
                c->a = n;
                parse_args(p, c, ")");
                int want = strcmp(name, "size") == 0 || strcmp(name, "lowerAscii") == 0 ||
                                   strcmp(name, "upperAscii") == 0
                               ? 0
                               : 1;
                if (c->nargs != want)
                    fail(p, "%s() takes %d argument%s", name, want, want == 1 ? "" : "s");
                n = c;
                continue;
            }
            node *s = mk(N_SELECT);
            if (!s) {
                free(name);
                break;
            }
            s->a = n;
            s->name = name;
            n = s;
        } else if (accept(p, "[")) {
            node *ix = mk(N_INDEX);
            if (!ix)
                break;
            ix->a = n;
            ix->b = parse_expr(p);
            expect(p, "]");
            n = ix;
        } else {
            break;
        }
    }
    return n;
}

static node *
parse_unary(parser *p)
{
    if (is_punct(p, "!") || is_punct(p, "-")) {
        bool neg = is_punct(p, "-");
        next(p);
        node *n = mk(neg ? N_NEG : N_NOT);
        if (n)
            n->a = parse_unary(p);
        return n;
    }
    return parse_member(p);
}

static node *
binary(node *a, const char *op, node *b)
{
    node *n = mk(N_BINARY);
    if (!n) {
        node_free(a);
        node_free(b);
        return NULL;
    }
    snprintf(n->op, sizeof n->op, "%s", op);
    n->a = a;
    n->b = b;
    return n;
}

static node *
parse_mul(parser *p)
{
    node *n = parse_unary(p);
    while (!p->failed && (is_punct(p, "*") || is_punct(p, "/") || is_punct(p, "%"))) {
        char op[4];
        snprintf(op, sizeof op, "%s", p->punct);
        next(p);
        n = binary(n, op, parse_unary(p));
    }
    return n;
}

static node *
parse_add(parser *p)
{
    node *n = parse_mul(p);
    while (!p->failed && (is_punct(p, "+") || is_punct(p, "-"))) {
        char op[4];
        snprintf(op, sizeof op, "%s", p->punct);
        next(p);
        n = binary(n, op, parse_mul(p));
    }
    return n;
}

static node *
parse_rel(parser *p)
{
    node *n = parse_add(p);
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    while (!p->failed) {
        const char *op = NULL;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (is_punct(p, ops[i]))
                op = ops[i];
        if (!op && p->tk == T_IDENT && strcmp(p->text, "in") == 0)
            op = "in";
        if (!op)
            break;
        next(p);
        n = binary(n, op, parse_add(p));
    }
    return n;
}

static node *
parse_and(parser *p)
{
    node *n = parse_rel(p);
    while (!p->failed && accept(p, "&&")) {
        node *a = mk(N_AND);
        if (!a)
            break;
        a->a = n;
        a->b = parse_rel(p);
        n = a;
    }
    return n;
}

static node *
parse_or(parser *p)
{
    node *n = parse_and(p);
    while (!p->failed && accept(p, "||")) {
        node *o = mk(N_OR);
        if (!o)
            break;
        o->a = n;
        o->b = parse_and(p);
        n = o;
    }
    return n;
}

static node *
parse_expr(parser *p)
{
    if (++p->depth > 100) {
        fail(p, "rule nested too deeply");
        p->depth--;
        return NULL;
    }
    node *n = parse_or(p);
    if (!p->failed && accept(p, "?")) {
        node *c = mk(N_COND);
        if (c) {
            c->a = n;
            c->b = parse_or(p);
            expect(p, ":");
            c->c = parse_expr(p);
            n = c;
        }
    }
    p->depth--;
    return n;
}

int
dc_cel_parse(const char *rule, dc_cel_rule **out, char *err, size_t cap)
{
    *out = NULL;
    if (!rule)
        return -EINVAL;
    parser p = {.src = rule, .err = err, .cap = cap};
    if (cap)
        err[0] = '\0';
    next(&p);
    node *root = parse_expr(&p);
    if (!p.failed && p.tk != T_END)
        fail(&p, "unexpected '%s'",
             p.tk == T_PUNCT ? p.punct : (p.tk == T_IDENT && p.text ? p.text : "token"));
    if (!p.failed && !root)
        fail(&p, "out of memory");
    free(p.text);
    if (p.failed) {
        node_free(root);
        return DC_CEL_UNSUPPORTED;
    }
    dc_cel_rule *r = calloc(1, sizeof *r);
    if (!r) {
        node_free(root);
        return -ENOMEM;
    }
    r->root = root;
    r->old_self = p.old_self;
    *out = r;
    return 0;
}

bool
dc_cel_uses_old_self(const dc_cel_rule *r)
{
    return r && r->old_self;
}

void
dc_cel_free(dc_cel_rule *r)
{
    if (!r)
        return;
    node_free(r->root);
    free(r);
}

/* ---- evaluation ---- */

typedef struct binding {
    const char *name;
    const json_t *value;
    const struct binding *up;
} binding;

typedef struct evaluator {
    const json_t *self, *old_self;
    char *err;
    size_t cap;
    bool errored; /* err holds the first error */
} evaluator;

/* NULL: an error, its message set (the first one kept). */
static json_t *eval_error(evaluator *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *
eval_error(evaluator *e, const char *fmt, ...)
{
    if (!e->errored) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->err, e->cap, fmt, ap);
        va_end(ap);
        e->errored = true;
    }
    return NULL;
}

static const char *
cel_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "map";
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "double";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    default:
        return "null_type";
    }
}

static double
as_double(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static bool
cel_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return as_double(a) == as_double(b);
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* Code points of a UTF-8 string (what CEL's size() counts). */
static long long
utf8_len(const char *s)
{
    long long n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static json_t *eval(evaluator *e, const node *n, const binding *b);

static json_t *
lookup(evaluator *e, const char *name, const binding *b)
{
    for (; b; b = b->up)
        if (strcmp(b->name, name) == 0)
            return json_incref((json_t *)b->value);
    if (strcmp(name, "self") == 0)
        return e->self ? json_incref((json_t *)e->self) : eval_error(e, "self is absent");
    if (strcmp(name, "oldSelf") == 0)
        return e->old_self ? json_incref((json_t *)e->old_self)
                           : eval_error(e, "oldSelf is absent");
    return eval_error(e, "undeclared reference to '%s'", name);
}

static json_t *
eval_bool(evaluator *e, const node *n, const binding *b, int *out)
{
    json_t *v = eval(e, n, b);
    if (!v)
        return NULL;
    if (!json_is_boolean(v)) {
        const char *t = cel_type(v);
        json_decref(v);
        return eval_error(e, "no such overload: expected bool, got %s", t);
    }
    *out = json_is_true(v);
    return v;
}

/* && and ||: an error on one side is absorbed when the other decides. */
static json_t *
eval_logic(evaluator *e, const node *n, const binding *b, bool is_and)
{
    int l = 0, r = 0;
    bool saved = e->errored;
    json_t *lv = eval_bool(e, n->a, b, &l);
    if (lv && l != is_and)
        return lv;
    json_decref(lv);
    bool left_err = !lv;
    json_t *rv = eval_bool(e, n->b, b, &r);
    if (rv && (r != is_and || !left_err)) {
        if (left_err && r != is_and)
            e->errored = saved; /* the error is absorbed */
        return rv;
    }
    json_decref(rv);
    return NULL; /* an error set by one side */
}

static json_t *
arith(evaluator *e, const char *op, const json_t *a, const json_t *b)
{
    if (op[0] == '+' && json_is_string(a) && json_is_string(b)) {
        lb_buf s = LB_BUF_INIT;
        lb_buf_append_str(&s, json_string_value(a));
        lb_buf_append_str(&s, json_string_value(b));
        if (!s.data)
            lb_buf_append_str(&s, "");
        json_t *v = json_string(s.data);
        lb_buf_free(&s);
        return v ? v : eval_error(e, "out of memory");
    }
    if (op[0] == '+' && json_is_array(a) && json_is_array(b)) {
        json_t *v = json_deep_copy(a);
        json_array_extend(v, (json_t *)b);
        return v;
    }
    if (json_is_integer(a) && json_is_integer(b)) {
        long long x = json_integer_value(a), y = json_integer_value(b), z = 0;
        bool over = false;
        switch (op[0]) {
        case '+':
            over = __builtin_add_overflow(x, y, &z);
            break;
        case '-':
            over = __builtin_sub_overflow(x, y, &z);
            break;
        case '*':
            over = __builtin_mul_overflow(x, y, &z);
            break;
        case '/':
        case '%':
            if (y == 0)
                return eval_error(e, op[0] == '/' ? "division by zero" : "modulus by zero");
            if (x == LLONG_MIN && y == -1)
                return eval_error(e, "integer overflow");
            z = op[0] == '/' ? x / y : x % y;
            break;
        }
        if (over)
            return eval_error(e, "integer overflow");
        return json_integer(z);
    }
    if (json_is_real(a) && json_is_real(b) && op[0] != '%') {
        double x = json_real_value(a), y = json_real_value(b);
        double z = op[0] == '+' ? x + y : op[0] == '-' ? x - y : op[0] == '*' ? x * y : x / y;
        return json_real(z);
    }
    return eval_error(e, "no such overload: %s %s %s", cel_type(a), op, cel_type(b));
}

static json_t *
compare(evaluator *e, const char *op, const json_t *a, const json_t *b)
{
    if (strcmp(op, "==") == 0)
        return json_boolean(cel_equal(a, b));
    if (strcmp(op, "!=") == 0)
        return json_boolean(!cel_equal(a, b));
    if (strcmp(op, "in") == 0) {
        if (json_is_array(b)) {
            size_t i;
            json_t *x;
            json_array_foreach((json_t *)b, i, x) if (cel_equal(a, x)) return json_true();
            return json_false();
        }
        if (json_is_object(b) && json_is_string(a))
            return json_boolean(json_object_get(b, json_string_value(a)) != NULL);
        return eval_error(e, "no such overload: %s in %s", cel_type(a), cel_type(b));
    }
    int c;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            long long x = json_integer_value(a), y = json_integer_value(b);
            c = x < y ? -1 : x > y;
        } else {
            double x = as_double(a), y = as_double(b);
            c = x < y ? -1 : x > y;
        }
    } else if (json_is_string(a) && json_is_string(b)) {
        c = strcmp(json_string_value(a), json_string_value(b));
    } else if (json_is_boolean(a) && json_is_boolean(b)) {
        c = (int)json_is_true(a) - (int)json_is_true(b);
    } else {
        return eval_error(e, "no such overload: %s %s %s", cel_type(a), op, cel_type(b));
    }
    bool r = strcmp(op, "<") == 0    ? c < 0
             : strcmp(op, "<=") == 0 ? c <= 0
             : strcmp(op, ">") == 0  ? c > 0
                                     : c >= 0;
    return json_boolean(r);
}

static json_t *
call(evaluator *e, const char *name, const json_t *target, json_t *const *args)
{
    if (strcmp(name, "size") == 0) {
        if (json_is_string(target))
            return json_integer(utf8_len(json_string_value(target)));
        if (json_is_array(target))
            return json_integer((json_int_t)json_array_size(target));
        if (json_is_object(target))
            return json_integer((json_int_t)json_object_size(target));
        return eval_error(e, "no such overload: size(%s)", cel_type(target));
    }
    if (strcmp(name, "int") == 0) {
        if (json_is_integer(target))
            return json_incref((json_t *)target);
        if (json_is_real(target)) {
            double d = json_real_value(target);
            if (!(d > (double)LLONG_MIN && d < (double)LLONG_MAX))
                return eval_error(e, "double is out of range for int");
            return json_integer((json_int_t)d);
        }
        if (json_is_string(target)) {
            const char *s = json_string_value(target);
            char *end;
            errno = 0;
            long long v = strtoll(s, &end, 10);
            if (!*s || *end || errno == ERANGE)
                return eval_error(e, "string is not an int: \"%s\"", s);
            return json_integer(v);
        }
        return eval_error(e, "no such overload: int(%s)", cel_type(target));
    }
    if (strcmp(name, "double") == 0) {
        if (json_is_number(target))
            return json_real(as_double(target));
        return eval_error(e, "no such overload: double(%s)", cel_type(target));
    }
    if (strcmp(name, "string") == 0) {
        char buf[64];
        if (json_is_string(target))
            return json_incref((json_t *)target);
        if (json_is_integer(target)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(target));
            return json_string(buf);
        }
        if (json_is_boolean(target))
            return json_string(json_is_true(target) ? "true" : "false");
        return eval_error(e, "no such overload: string(%s)", cel_type(target));
    }
    if (strcmp(name, "lowerAscii") == 0 || strcmp(name, "upperAscii") == 0) {
        if (!json_is_string(target))
            return eval_error(e, "no such overload: %s.%s()", cel_type(target), name);
        char *t = strdup(json_string_value(target));
        if (!t)
            return eval_error(e, "out of memory");
        for (char *q = t; *q; q++)
            if ((unsigned char)*q < 0x80)
                *q = (char)(name[0] == 'l' ? tolower((unsigned char)*q)
                                           : toupper((unsigned char)*q));
        json_t *v = json_string(t);
        free(t);
        return v;
    }
    /* string methods */
    const json_t *arg = args ? args[0] : NULL;
    if (!json_is_string(target) || !json_is_string(arg))
        return eval_error(e, "no such overload: %s.%s(%s)", cel_type(target), name,
                          arg ? cel_type(arg) : "");
    const char *s = json_string_value(target), *t = json_string_value(arg);
    size_t ls = strlen(s), lt = strlen(t);
    if (strcmp(name, "startsWith") == 0)
        return json_boolean(ls >= lt && memcmp(s, t, lt) == 0);
    if (strcmp(name, "endsWith") == 0)
        return json_boolean(ls >= lt && memcmp(s + ls - lt, t, lt) == 0);
    if (strcmp(name, "contains") == 0)
        return json_boolean(strstr(s, t) != NULL);
    if (strcmp(name, "matches") == 0) {
        int m = dc_schema_regex_match(t, s);
        if (m < 0)
            return eval_error(e, "invalid regular expression: \"%s\"", t);
        return json_boolean(m == 1);
    }
    return eval_error(e, "unsupported function %s()", name);
}

static json_t *
eval_macro(evaluator *e, const node *n, const binding *b)
{
    json_t *range = eval(e, n->a, b);
    if (!range)
        return NULL;
    if (!json_is_array(range) && !json_is_object(range)) {
        const char *t = cel_type(range);
        json_decref(range);
        return eval_error(e, "no such overload: %s.%s()", t, n->name);
    }
    bool all = strcmp(n->name, "all") == 0, one = strcmp(n->name, "exists_one") == 0;
    size_t count = 0;
    bool any_error = false, decided = false;
    size_t nelem = json_is_array(range) ? json_array_size(range) : json_object_size(range);
    void *iter = json_is_object(range) ? json_object_iter(range) : NULL;
    for (size_t i = 0; i < nelem && !decided; i++) {
        json_t *elem;
        json_t *key = NULL;
        if (json_is_array(range)) {
            elem = json_array_get(range, i);
        } else {
            key = json_string(json_object_iter_key(iter));
            elem = key;
            iter = json_object_iter_next(range, iter);
        }
        binding local = {.name = n->var, .value = elem, .up = b};
        int v = 0;
        json_t *r = eval_bool(e, n->b, &local, &v);
        json_decref(key);
        if (!r) {
            any_error = true;
            if (one)
                break;
            continue;
        }
        json_decref(r);
        if (v)
            count++;
        if (all && !v)
            decided = true;
        if (!all && !one && v)
            decided = true;
    }
    json_decref(range);
    if (one) {
        if (any_error)
            return NULL;
        return json_boolean(count == 1);
    }
    if (decided) {
        e->errored = false; /* a decided result absorbs errors of others */
        return json_boolean(!all);
    }
    if (any_error)
        return NULL;
    return json_boolean(all);
}

static json_t *
eval(evaluator *e, const node *n, const binding *b)
{
    if (!n)
        return eval_error(e, "empty expression");
    switch (n->kind) {
    case N_LIT:
        return json_incref(n->lit);
    case N_IDENT:
        return lookup(e, n->name, b);
    case N_LIST: {
        json_t *list = json_array();
        for (int i = 0; i < n->nargs; i++) {
            json_t *v = eval(e, n->args[i], b);
            if (!v) {
                json_decref(list);
                return NULL;
            }
            json_array_append_new(list, v);
        }
        return list;
    }
    case N_SELECT:
    case N_HAS: {
        json_t *obj = eval(e, n->a, b);
        if (!obj)
            return NULL;
        if (!json_is_object(obj)) {
            const char *t = cel_type(obj);
            json_decref(obj);
            return eval_error(e, "no such overload: field '%s' of %s", n->name, t);
        }
        json_t *v = json_object_get(obj, n->name);
        json_t *r = n->kind == N_HAS ? json_boolean(v != NULL)
                    : v              ? json_incref(v)
                                     : eval_error(e, "no such key: %s", n->name);
        json_decref(obj);
        return r;
    }
    case N_INDEX: {
        json_t *obj = eval(e, n->a, b);
        if (!obj)
            return NULL;
        json_t *ix = eval(e, n->b, b);
        json_t *r = NULL;
        if (!ix) {
            r = NULL;
        } else if (json_is_array(obj) && json_is_integer(ix)) {
            json_int_t i = json_integer_value(ix);
            r = i >= 0 && (size_t)i < json_array_size(obj)
                    ? json_incref(json_array_get(obj, (size_t)i))
                    : eval_error(e, "index out of range: %lld", (long long)i);
        } else if (json_is_object(obj) && json_is_string(ix)) {
            json_t *v = json_object_get(obj, json_string_value(ix));
            r = v ? json_incref(v) : eval_error(e, "no such key: %s", json_string_value(ix));
        } else {
            r = eval_error(e, "no such overload: %s[%s]", cel_type(obj), cel_type(ix));
        }
        json_decref(ix);
        json_decref(obj);
        return r;
    }
    case N_CALL: {
        json_t *target = n->a ? eval(e, n->a, b) : (n->nargs ? eval(e, n->args[0], b) : NULL);
        if (!target)
            return NULL;
        json_t *arg = NULL;
        if (n->a && n->nargs == 1) {
            arg = eval(e, n->args[0], b);
            if (!arg) {
                json_decref(target);
                return NULL;
            }
        }
        json_t *r = call(e, n->name, target, arg ? &arg : NULL);
        json_decref(arg);
        json_decref(target);
        return r;
    }
    case N_MACRO:
        return eval_macro(e, n, b);
    case N_NOT: {
        int v = 0;
        json_t *r = eval_bool(e, n->a, b, &v);
        if (!r)
            return NULL;
        json_decref(r);
        return json_boolean(!v);
    }
    case N_NEG: {
        json_t *v = eval(e, n->a, b);
        if (!v)
            return NULL;
        json_t *r;
        if (json_is_integer(v) && json_integer_value(v) != LLONG_MIN)
            r = json_integer(-json_integer_value(v));
        else if (json_is_real(v))
            r = json_real(-json_real_value(v));
        else
            r = eval_error(e, "no such overload: -%s", cel_type(v));
        json_decref(v);
        return r;
    }
    case N_AND:
        return eval_logic(e, n, b, true);
    case N_OR:
        return eval_logic(e, n, b, false);
    case N_COND: {
        int c = 0;
        json_t *r = eval_bool(e, n->a, b, &c);
        if (!r)
            return NULL;
        json_decref(r);
        return eval(e, c ? n->b : n->c, b);
    }
    case N_BINARY: {
        json_t *x = eval(e, n->a, b);
        if (!x)
            return NULL;
        json_t *y = eval(e, n->b, b);
        if (!y) {
            json_decref(x);
            return NULL;
        }
        json_t *r = strchr("+-*/%", n->op[0]) && n->op[1] == '\0' ? arith(e, n->op, x, y)
                                                                  : compare(e, n->op, x, y);
        json_decref(x);
        json_decref(y);
        return r;
    }
    }
    return eval_error(e, "unknown expression");
}

int
dc_cel_eval(const dc_cel_rule *r, const json_t *self, const json_t *old_self, bool *result,
            char *err, size_t cap)
{
    char scratch[8];
    evaluator e = {.self = self,
                   .old_self = old_self,
                   .err = cap ? err : scratch,
                   .cap = cap ? cap : sizeof scratch};
    e.err[0] = '\0';
    json_t *v = eval(&e, r->root, NULL);
    if (!v) {
        if (!e.err[0])
            snprintf(e.err, e.cap, "evaluation failed");
        return DC_CEL_EVAL_ERROR;
    }
    if (!json_is_boolean(v)) {
        snprintf(e.err, e.cap, "rule yields %s, not bool", cel_type(v));
        json_decref(v);
        return -EINVAL;
    }
    *result = json_is_true(v);
    json_decref(v);
    return 0;
}

int
dc_cel_check(const char *rule, const json_t *self, const json_t *old_self, bool *result, char *err,
             size_t cap)
{
    dc_cel_rule *r;
    int rc = dc_cel_parse(rule, &r, err, cap);
    if (rc != 0)
        return rc;
    rc = dc_cel_eval(r, self, old_self, result, err, cap);
    dc_cel_free(r);
    return rc;
}
