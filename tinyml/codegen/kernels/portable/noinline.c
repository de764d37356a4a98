/* TML_NOINLINE keeps a helper out of line where the compiler allows it: inlined into a
 * kernel's loops, its live values get spilled to the stack. */
#if defined(__GNUC__)
#define TML_NOINLINE __attribute__((noinline))
#else
#define TML_NOINLINE
#endif
