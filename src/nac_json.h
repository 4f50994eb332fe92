/*
 * nac_json.h - comparator training settings to and from JSON, for the
 * HTTP API (POST /v1/nac/train, searches) and the stored model rows.
 */
#ifndef CTNAS_NAC_JSON_H
#define CTNAS_NAC_JSON_H

#include <jansson.h>

#include "nac_train.h"

/* Override cfg's fields with those present in obj (keys: epochs, batch,
 * pairing, lr, schedule, lr_min, beta1, beta2, weight_decay, decoupled,
 * members, holdout, eval_every, patience, layers, dim, head, hidden, norm,
 * bidir, seed); unknown keys are not checked here.  Errors name prefix.key. */
int ctnas_nac_json_read(const json_t *obj, const char *prefix,
                        struct ctnas_nac_train_config *cfg,
                        struct ctnas_err *err);
/* New reference: every setting of cfg under the same keys. */
json_t *ctnas_nac_json_write(const struct ctnas_nac_train_config *cfg);
/* Reject keys of obj that are neither settings ctnas_nac_json_read
 * understands nor in also (a route's own keys, NULL-terminated; may be
 * NULL): a typo is an error naming prefix.key, not a silent default. */
int ctnas_nac_json_only(const json_t *obj, const char *prefix,
                        const char *const *also, struct ctnas_err *err);

#endif
