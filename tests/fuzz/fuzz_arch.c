/*
 * fuzz_arch.c - libFuzzer target: request body -> architecture, for each
 * space.  The input is read (a) as a JSON document (any value, as
 * json_loadb with the flags http.c uses, plus JSON_DECODE_ANY so a bare
 * native string reaches parse_json) handed to every space's parse_json,
 * as is and, for an object with "arch", that member too; and (b) as a
 * NUL-terminated native string handed to every space's parse_string.
 * Whatever parses must round-trip (fuzz_check_arch).
 */
#include "config.h"

#include <jansson.h>

#include "fuzz.h"
#include "space.h"

static void try_json(const json_t *j)
{
    for (int k = 0; ctnas_spaces[k] != NULL; k++) {
        const struct ctnas_space *sp = ctnas_spaces[k];
        struct ctnas_arch a;
        struct ctnas_err err = {0};
        int rc = sp->parse_json(j, &a, &err);
        if (rc == 0)
            fuzz_check_arch(sp, &a);
        else
            FUZZ_CHECK(rc < 0 && err.code == rc && err.msg[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j != NULL) {
        try_json(j);
        const json_t *arch = json_object_get(j, "arch");
        if (arch != NULL)
            try_json(arch);
        json_decref(j);
    }

    char *s = fuzz_strndup(data, size);
    for (int k = 0; ctnas_spaces[k] != NULL; k++) {
        const struct ctnas_space *sp = ctnas_spaces[k];
        struct ctnas_arch a;
        struct ctnas_err err = {0};
        int rc = sp->parse_string(s, &a, &err);
        if (rc == 0)
            fuzz_check_arch(sp, &a);
        else
            FUZZ_CHECK(rc < 0 && err.code == rc && err.msg[0] != '\0');
    }
    free(s);
    return 0;
}
