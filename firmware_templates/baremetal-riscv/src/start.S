/* Entry of a bare-metal RV32 image: set gp and sp, copy .data, clear .bss, run the application, exit. */
    .section .text.start, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, _stack_top
    la a0, _data_start
    la a1, _data_load
    la a2, _data_end
    sub a2, a2, a0
    call memcpy
    la a0, _bss_start
    li a1, 0
    la a2, _bss_end
    sub a2, a2, a0
    call memset
    call tinyml_main
    call port_exit
1:  j 1b
