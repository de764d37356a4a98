/* Entry of the Xtensa sim image. QEMU starts at the first byte of the ROM (0x50000000),
 * whatever the ELF entry says, so this file is linked first. Call0 ABI: a1 is the stack. */
    .section .text.start, "ax"
    .global _start
    .align 4
_start:
    j .Lboot
    .literal_position
    .align 4
.Lboot:
    movi a1, _stack_top
    movi a0, xtensa_c_start
    callx0 a0
.Lhang:
    j .Lhang
