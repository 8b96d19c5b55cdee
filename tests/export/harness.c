/* Test harness for ncps.export.to_c: reads T, then T steps of (x[INPUTS], dt) as float32 from
   stdin, starting from the state that follows them (STATE_SIZE floats), and writes every step's
   y[OUTPUTS] and then the final state to stdout. */
#include <stdio.h>

#include H_HEADER

int main(void)
{
    static float xs[100000];
    float state[H_STATE], y[H_OUTPUTS];
    int t, T;
    if (fread(&T, sizeof(int), 1, stdin) != 1) return 1;
    if ((long)T * (H_INPUTS + 1) > 100000) return 2;
    if (fread(xs, sizeof(float), (size_t)T * (H_INPUTS + 1), stdin) != (size_t)T * (H_INPUTS + 1)) return 3;
    if (fread(state, sizeof(float), H_STATE, stdin) != H_STATE) return 4;
    for (t = 0; t < T; ++t) {
        const float *row = xs + (long)t * (H_INPUTS + 1);
        H_STEP(row, row[H_INPUTS], state, y);
        fwrite(y, sizeof(float), H_OUTPUTS, stdout);
    }
    fwrite(state, sizeof(float), H_STATE, stdout);
    return 0;
}
