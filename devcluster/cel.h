/*
 * cel.h: a small evaluator for the subset of CEL (Common Expression
 * Language) that CRD validation rules (x-kubernetes-validations) use.
 *
 * The subset (devcluster/README.md lists it too):
 *   literals      integers (and 7u), doubles, 'strings' and "strings" with
 *                 \\ \' \" \n \t escapes, true, false, null, [lists]
 *   variables     self, oldSelf, and the variable of all()/exists()
 *   fields        a.b, a['b'], list[i], has(a.b)
 *   operators     ! - * / % + (numbers, strings, lists) == != < <= > >=
 *                 && || (with CEL's commutative treatment of errors)
 *                 ?: in
 *   functions     size(x) and x.size(), x.startsWith(s), x.endsWith(s),
 *                 x.contains(s), x.matches(re), x.lowerAscii(), x.upperAscii(),
 *                 int(x), double(x), string(x),
 *                 x.all(v, p), x.exists(v, p), x.exists_one(v, p)
 *
 * Anything else (timestamps, durations, quantities, map literals, type(),
 * optional types, messageExpression, ...) fails to parse with
 * DC_CEL_UNSUPPORTED: the API server accepts such a CRD, as a real one
 * would, and logs that the rule is not enforced.
 */
#ifndef DC_CEL_H
#define DC_CEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The rule uses something outside the subset (or is not CEL at all). */
#define DC_CEL_UNSUPPORTED (-1001)
/* Evaluation failed (no such key, wrong type, division by zero). */
#define DC_CEL_EVAL_ERROR (-1002)

typedef struct dc_cel_rule dc_cel_rule;

/* Parse rule. Returns 0 and *out, or DC_CEL_UNSUPPORTED with the reason
 * in err. */
int dc_cel_parse(const char *rule, dc_cel_rule **out, char *err, size_t cap);
/* Whether the rule refers to oldSelf (a transition rule: evaluated only on
 * updates where the old value exists). */
bool dc_cel_uses_old_self(const dc_cel_rule *r);
/* Evaluate with self and oldSelf (NULL: absent). Returns 0 and *result,
 * DC_CEL_EVAL_ERROR with the reason in err, or -EINVAL when the rule does
 * not yield a boolean. */
int dc_cel_eval(const dc_cel_rule *r, const json_t *self, const json_t *old_self, bool *result,
                char *err, size_t cap);
void dc_cel_free(dc_cel_rule *r);

/* Parse and evaluate in one step (tests, one-off rules). */
int dc_cel_check(const char *rule, const json_t *self, const json_t *old_self, bool *result,
                 char *err, size_t cap);

#endif
