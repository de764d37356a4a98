/* THE SENSOR HOOK: replace the body of tinyml_sensor_read() with your driver (accelerometer,
 * temperature probe, ADC ...). Deliver `window` samples of `channels` values each, in the
 * channel order and units of the training data, interleaved: s0c0 s0c1 ... s1c0 ...
 * Return 1 while a window is not complete yet (the application keeps serving the serial line
 * meanwhile), and -1 when samples were lost (the run loop reads its next window whole). `window`
 * is the hop, not the model's window, for a run that slides its window (tinyml_run.h). This placeholder reports "not ready" forever. */
#include "tinyml_run.h"

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    (void)samples;
    (void)window;
    (void)channels;
    return 1;
}
