/*
 * migrations.h - the schema migrations of sql/, embedded at build time by
 * scripts/embed_sql.sh so the binary needs no file at run time.
 * ctnas_migrations[i].version is i + 1: user_version counts applied files.
 */
#ifndef CTNAS_MIGRATIONS_H
#define CTNAS_MIGRATIONS_H

struct ctnas_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct ctnas_migration ctnas_migrations[];
extern const int ctnas_n_migrations;

#endif
