/* autointerp_score.c: see autointerp_score.h. */
#include "server/autointerp_score.h"

#include <math.h>

int ai_norm_floor(double x, double max)
{
    if (!(max > 0) || !(x > 0)) return 0;
    double v = floor(10.0 * x / max);
    return v > 10 ? 10 : (int)v;
}

int ai_norm_ceil(double x, double max)
{
    if (max < 1e-6) max = 1e-6;
    double v = ceil(10.0 * x / max);
    return v < 0 ? 0 : v > 10 ? 10 : (int)v;
}

double ai_pearson(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    return (sxx > 0 && syy > 0) ? sxy / sqrt(sxx * syy) : NAN;
}

void ai_confusion_add(ai_confusion *m, int activating, int predicted)
{
    if (activating) predicted ? m->tp++ : m->fn++;
    else predicted ? m->fp++ : m->tn++;
}

double ai_balanced_accuracy(const ai_confusion *m)
{
    int p = m->tp + m->fn, n = m->tn + m->fp;
    if (p == 0 || n == 0) return NAN;
    return 0.5 * ((double)m->tp / p + (double)m->tn / n);
}

double ai_accuracy(const ai_confusion *m)
{
    int all = m->tp + m->fn + m->tn + m->fp;
    return all ? (double)(m->tp + m->tn) / all : NAN;
}
