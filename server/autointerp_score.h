/* autointerp_score.h: the numbers of AutoInterp, as pure functions (no I/O, no LLM): the 0-10
 * normalisation of activation records, pooled Pearson correlation for simulation scoring,
 * balanced accuracy for Delphi's fuzz/detection and Neuronpedia's recall_alt fraction.
 * Undefined scores are NaN; callers store them as null. */
#ifndef SAED_AUTOINTERP_SCORE_H
#define SAED_AUTOINTERP_SCORE_H

/* OAI's rule: min(10, floor(10*relu(x)/max)); every value 0 when max <= 0. */
int ai_norm_floor(double x, double max);
/* Delphi's rule: clamp(ceil(10*x/max), 0, 10), max floored at 1e-6. */
int ai_norm_ceil(double x, double max);

/* Pearson r of x and y (n values); NaN when n < 2 or either side is constant. */
double ai_pearson(const double *x, const double *y, int n);

/* A confusion matrix of binary predictions (items whose batch failed are not counted). */
typedef struct ai_confusion {
    int tp, fn, tn, fp;
} ai_confusion;
void ai_confusion_add(ai_confusion *m, int activating, int predicted);
/* (TP/P + TN/N) / 2; NaN when either class is empty. */
double ai_balanced_accuracy(const ai_confusion *m);
/* (TP + TN) / all: Neuronpedia's recall_alt (top records matched + decoys not matched). */
double ai_accuracy(const ai_confusion *m);

#endif
