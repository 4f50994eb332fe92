/*
 * eval_nac.h - the `ctnasd eval-nac` command: train the comparator on a
 * seeded sample of a benchmark file with the daemon's training code and
 * report its Kendall tau on a disjoint test sample as one JSON line.
 */
#ifndef CTNAS_EVAL_NAC_H
#define CTNAS_EVAL_NAC_H

/* argv[0] is the command name ("eval-nac"), options follow:
 *   --space S --data FILE [--dataset FIELD] --train N --test M --seed K
 *   [--recipe default|paper] [--epochs E] [--layers L] [--dim D]
 *   [--lr X] [--batch B] [--head concat|diff|mlp] [--pairs perm|all]
 *   [--threads T] ... (--help lists them all).
 * Prints the JSON line on stdout; messages on stderr.  Returns 0, 1 on a
 * runtime error, 2 on a usage error. */
int ctnas_eval_nac_main(int argc, char **argv);

#endif
