/* THE SENSOR HOOK: replace the body of tinyml_sensor_read() with your driver (accelerometer,
 * temperature probe, ADC ...). Deliver `window` samples of `channels` values each, in the
 * channel order and units of the training data, interleaved: s0c0 s0c1 ... s1c0 ...
 * Return non-zero while a window is not complete yet; the application keeps serving the
 * serial line meanwhile. This placeholder reports "not ready" forever. */
#include "tinyml_run.h"

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    (void)samples;
    (void)window;
    (void)channels;
    return 1;
}
