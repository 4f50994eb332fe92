/*
 * nac_json.c - see nac_json.h.  One table (read and written by jsonv.c)
 * names every setting, its type and bounds.
 */
#include "config.h"
#include "nac_json.h"

#include <stddef.h>

#include "jsonv.h"

static const char *const schedules[] = {"constant", "cosine", NULL};

#define T(f) offsetof(struct ctnas_nac_train_config, f)
#define M(f) (offsetof(struct ctnas_nac_train_config, model) + \
              offsetof(struct ctnas_nac_config, f))

static const struct ctnas_jsonv_field fields[] = {
    {"epochs", CTNAS_JV_INT, T(epochs), 1, 100000, NULL},
    {"batch", CTNAS_JV_INT, T(batch), 2, 4096, NULL},
    {"pairing", CTNAS_JV_ENUM, T(pairing), 0, 0,
     ctnas_nac_pairing_names},
    {"lr", CTNAS_JV_REAL, T(lr), 1e-7, 1, NULL},
    {"schedule", CTNAS_JV_ENUM, T(schedule), 0, 0, schedules},
    {"lr_min", CTNAS_JV_REAL, T(lr_min), 0, 1, NULL},
    {"beta1", CTNAS_JV_REAL, T(beta1), 0, 0.999999, NULL},
    {"beta2", CTNAS_JV_REAL, T(beta2), 0, 0.999999, NULL},
    {"weight_decay", CTNAS_JV_REAL, T(weight_decay), 0, 0.999, NULL},
    {"decoupled", CTNAS_JV_BOOL, T(decoupled), 0, 0, NULL},
    {"members", CTNAS_JV_INT, T(members), 1, CTNAS_NAC_MAX_MEMBERS, NULL},
    {"holdout", CTNAS_JV_REAL, T(holdout), 0, 0.5, NULL},
    {"eval_every", CTNAS_JV_INT, T(eval_every), 1, 100000, NULL},
    {"patience", CTNAS_JV_INT, T(patience), 0, 100000, NULL},
    {"layers", CTNAS_JV_INT, M(layers), 0, CTNAS_NAC_MAX_LAYERS, NULL},
    {"dim", CTNAS_JV_INT, M(dim), 1, 512, NULL},
    {"head", CTNAS_JV_ENUM, M(head), 0, 0, ctnas_nac_head_names},
    {"hidden", CTNAS_JV_INT, M(hidden), 1, 512, NULL},
    {"norm", CTNAS_JV_BOOL, M(norm), 0, 0, NULL},
    {"bidir", CTNAS_JV_INT, M(bidir), 0, 2, NULL},
    {"readout", CTNAS_JV_ENUM, M(readout), 0, 0,
     ctnas_nac_readout_names},
    {"top_weight", CTNAS_JV_REAL, T(top_weight), 0, 1e6, NULL},
    {"top_scale", CTNAS_JV_REAL, T(top_scale), 1e-6, 1, NULL},
    {"seed", CTNAS_JV_U64, T(seed), 0, 9007199254740991.0, NULL},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

int ctnas_nac_json_only(const json_t *obj, const char *prefix,
                        const char *const *also, struct ctnas_err *err)
{
    return ctnas_jsonv_only_fields(obj, prefix, fields, N_FIELDS, also, err);
}

int ctnas_nac_json_read(const json_t *obj, const char *prefix,
                        struct ctnas_nac_train_config *cfg,
                        struct ctnas_err *err)
{
    return ctnas_jsonv_read_fields(obj, prefix, fields, N_FIELDS, cfg, err);
}

json_t *ctnas_nac_json_write(const struct ctnas_nac_train_config *cfg)
{
    return ctnas_jsonv_write_fields(fields, N_FIELDS, cfg);
}
