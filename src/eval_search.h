/*
 * eval_search.h - the `ctnasd eval-search` command: play the ask/tell
 * client of a search job from a benchmark file and report how good the
 * architectures it finds really are.
 */
#ifndef CTNAS_EVAL_SEARCH_H
#define CTNAS_EVAL_SEARCH_H

/* argv[0] is the command name ("eval-search"), options follow:
 *   --space S --data FILE --budget B [--rounds R] --seeds LIST
 *   [search options] [comparator training options] (--help lists them).
 * For each seed: reveal the measured value of B/(R+1) random
 * architectures of the file, train a comparator on them (ctnas_nac_train),
 * search (search.h); then R times reveal the values of the search's best
 * unmeasured suggestions (the rest of the budget, split evenly), retrain
 * on all of them and search on.  Prints one JSON line per seed and a
 * summary line on stdout; messages on stderr.  Returns 0, 1 on a runtime
 * error, 2 on a usage error. */
int ctnas_eval_search_main(int argc, char **argv);

#endif
