/* Cortex-M4 DSP target: ACLE intrinsics (__sxtb16, __smlad); build with -mcpu=cortex-m4 or any
 * core with the DSP extension (M4, M7, M33 with DSP, M55). */
#if !defined(__ARM_FEATURE_DSP) || __ARM_FEATURE_DSP != 1
#error "target cortex-m4-dsp needs a core with the DSP extension (e.g. -mcpu=cortex-m4); use target portable"
#endif
#include <arm_acle.h>
