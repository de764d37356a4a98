/* THE SENSOR HOOK: replace the body of tinyml_sensor_read() with your driver (accelerometer,
 * temperature probe, ADC ...). Deliver `window` samples of `channels` values each, in the
 * channel order and units of the training data, interleaved: s0c0 s0c1 ... s1c0 ...
 * Return 1 while a window is not complete yet (the application keeps serving the serial line
 * meanwhile), and -1 when samples were lost (the run loop reads its next window whole). `window`
 * is how many samples are due: the model's window, the hop once a run that slides its window
 * has read its first one, or (at most a window of) samples a run whose hop is longer than its window
 * discards between windows (tinyml_run.h). A call for another `samples` or `window` than the read
 * under way means the run loop gave that read up: start afresh there. Until replaced, this hook reports "not ready" forever. */
#include "tinyml_run.h"

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    (void)samples;
    (void)window;
    (void)channels;
    return 1;
}
