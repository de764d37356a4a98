"""Rendered SDK projects (ESP-IDF, Pico SDK) against the SDKs' rules, without the SDKs.

Every ESP-IDF and Pico project (each board and runtime) is rendered; its CMake requirements are
evaluated by CMake itself for each IDF version against the components each version has; every C
file is compiled for the board's ISA at the SDK's flags with -Werror, against minimal SDK
headers written below (they declare only what the project calls, with the signatures of the SDK
version named). The compilers are the nearest ones installed here: the Pico's own (Cortex-M0+),
rv32imc for the ESP32-C3, and the lx106 (Xtensa) for the ESP32's LX6 and the S3's LX7, whose
compilers ship with ESP-IDF only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import host_compile
from tinyml.codegen import generate
from tinyml.device import protocol as p
from tinyml.errors import CheckFailed, InputError
from tinyml.firmware import esp_nn
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.hil import check_hello
from tinyml.rundir import int8_model

pytestmark = [pytest.mark.cross_compiler]

ESP_BOARDS = ("esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1")
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Og")
ISA_FLAGS = {
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "--specs=picolibc.specs"],
    "cortex-m4": ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                  "--specs=picolibc.specs"],
    "rv32imc": ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32",
                "--specs=picolibc.specs"],
    "xtensa": ["xtensa-lx106-elf-gcc", "-mlongcalls", "--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs"],
}
BOARD_ISA = {"esp32-devkitc": "xtensa", "esp32-s3-devkitc-1": "xtensa", "esp32-c3-devkitm-1": "rv32imc",
             "rpi-pico": "cortex-m0plus"}
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
# ESP-IDF's own flags for application code (tools/cmake/build.cmake, 5.x and 6.x), with its
# three optimisation choices (CONFIG_COMPILER_OPTIMIZATION_DEBUG / PERF / SIZE).
IDF_FLAGS = ["-ffunction-sections", "-fdata-sections", "-fstrict-volatile-bitfields", "-fno-jump-tables",
             "-fno-tree-switch-conversion", "-Wno-unused-parameter", "-Wno-sign-compare"]
IDF_LEVELS = ("-Og", "-O2", "-Os")
IDF_C_STD = {"5.x": "-std=gnu17", "6.x": "-std=gnu2x"}  # 6.0 defaults to gnu23 (GCC 12 spells it gnu2x)
# The Pico SDK's: CMake's Release (the SDK's default build type), MinSizeRel and Debug.
PICO_FLAGS = ["-ffunction-sections", "-fdata-sections", "-DNDEBUG"]
PICO_LEVELS = ("-O3", "-Os", "-Og")

# ---- minimal SDK headers: only what the rendered projects call --------------------------------

IDF_HEADERS = {  # signatures as in ESP-IDF v5.3 and v6.0 (hal/uart_types.h, driver/uart.h, esp_hw_support)
    "driver/uart.h": """#pragma once
#include <stddef.h>
#include <stdint.h>
typedef int esp_err_t;
typedef uint32_t TickType_t;
typedef void *QueueHandle_t;
typedef enum { UART_NUM_0, UART_NUM_1, UART_NUM_MAX } uart_port_t;
esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t *uart_queue, int intr_alloc_flags);
int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size);
int uart_read_bytes(uart_port_t uart_num, void *buf, uint32_t length, TickType_t ticks_to_wait);
""",
    "esp_cpu.h": """#pragma once
#include <stdint.h>
typedef uint32_t esp_cpu_cycle_count_t;
esp_cpu_cycle_count_t esp_cpu_get_cycle_count(void);
""",
    "esp_random.h": "#pragma once\n#include <stdint.h>\nuint32_t esp_random(void);\n",
    "esp_timer.h": "#pragma once\n#include <stdint.h>\nint64_t esp_timer_get_time(void);\n",
}
PICO_HEADERS = {  # signatures as in Pico SDK 2.2.0
    "pico/stdio.h": """#pragma once
#include <stdbool.h>
#include <stdint.h>
int stdio_put_string(const char *s, int len, bool newline, bool cr_translation);
int stdio_getchar_timeout_us(uint32_t timeout_us);
""",
    "pico/stdio_usb.h": "#pragma once\n#include <stdbool.h>\nbool stdio_usb_init(void);\n",
    "pico/rand.h": "#pragma once\n#include <stdint.h>\nuint32_t get_rand_32(void);\n",
    "pico/time.h": """#pragma once
#include <stdint.h>
typedef uint64_t absolute_time_t;
absolute_time_t get_absolute_time(void);
uint32_t to_ms_since_boot(absolute_time_t t);
uint32_t time_us_32(void);
""",
    "hardware/gpio.h": """#pragma once
#include <stdint.h>
typedef enum { GPIO_FUNC_SPI = 1, GPIO_FUNC_UART = 2, GPIO_FUNC_I2C = 3 } gpio_function_t;
void gpio_set_function(unsigned int gpio, gpio_function_t fn);
""",
    "hardware/uart.h": """#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
typedef struct uart_inst uart_inst_t;
extern uart_inst_t *const uart0_inst;
#define uart0 uart0_inst
unsigned int uart_init(uart_inst_t *uart, unsigned int baudrate);
void uart_write_blocking(uart_inst_t *uart, const uint8_t *src, size_t len);
bool uart_is_readable(uart_inst_t *uart);
char uart_getc(uart_inst_t *uart);
""",
}
TFLM_HEADERS = {  # the part of TFLM's API tflm_model.cc uses, as in esp-tflite-micro 1.3.x
    "tensorflow/lite/schema/schema_generated.h": """#pragma once
namespace tflite { struct Model; const Model *GetModel(const void *buf); }
""",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": """#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddConv2D(); TfLiteStatus AddExpandDims(); TfLiteStatus AddFullyConnected();
  TfLiteStatus AddMaxPool2D(); TfLiteStatus AddMean(); TfLiteStatus AddReshape(); TfLiteStatus AddSoftmax();
};
}
""",
    "tensorflow/lite/micro/micro_interpreter.h": """#pragma once
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
typedef union { int8_t *int8; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; } TfLiteTensor;
namespace tflite {
class MicroInterpreter {
 public:
  MicroInterpreter(const Model *model, const MicroOpResolver &op_resolver, uint8_t *tensor_arena,
                   size_t tensor_arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor *input(size_t index);
  TfLiteTensor *output(size_t index);
};
}
""",
}


def _write_headers(folder: Path, headers: dict[str, str]) -> Path:
    for rel, text in headers.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def compile_c(isa: str, sources: list[Path], *flags: str, cwd: Path) -> None:
    """Compile (not link) C sources for ``isa`` with warnings as errors."""
    cc = ISA_FLAGS[isa]
    if shutil.which(cc[0]) is None:
        pytest.skip(f"{cc[0]} not installed")
    proc = subprocess.run([*cc, *flags, *WARNINGS, "-c", *map(str, sources)], capture_output=True, text=True,
                          cwd=cwd)
    assert proc.returncode == 0, f"{isa} {' '.join(flags)}:\n{proc.stderr}"


@pytest.fixture(scope="module")
def vib_cnn(shared: Path) -> Path:
    return shared / "models" / "vib_cnn_int8.tflite"


@pytest.fixture(scope="module")
def renders(vib_cnn: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every SDK board with every runtime it takes, rendered once for this module."""
    base = tmp_path_factory.mktemp("sdk_renders")
    model = int8_model(vib_cnn)
    out = {}
    for board, runtime in [*((b, r) for b in ESP_BOARDS for r in ("native", "tflm")), ("rpi-pico", "native")]:
        out[board, runtime] = render_project(load_board(board), model, base / f"{board}-{runtime}", runtime=runtime)
    return out


# ---- the generated model C --------------------------------------------------------------------

@pytest.mark.parametrize("model", ["vib_cnn", "feat_ae", "toycar_ad"])
@pytest.mark.parametrize(("isa", "target"), [("cortex-m0plus", "portable"), ("rv32imc", "portable"),
                                             ("xtensa", "portable"), ("cortex-m4", "cortex-m4-dsp")])
def test_model_c_is_warning_free_at_every_level(model: str, isa: str, target: str, shared: Path,
                                                tmp_path: Path) -> None:
    """GCC's -O3 once unrolled the dead tail loop of FULLY_CONNECTED (4k output units) from an
    unknown start and warned of overflow (-Waggressive-loop-optimizations)."""
    gen = generate((shared / "models" / f"{model}_int8.tflite").read_bytes(), prefix="model", target=target)
    (tmp_path / "model.h").write_text(gen.header)
    (tmp_path / "model.c").write_text(gen.source)
    for level in OPT_LEVELS:
        compile_c(isa, [tmp_path / "model.c"], level, "-std=gnu11", cwd=tmp_path)


# ---- ESP-IDF ----------------------------------------------------------------------------------

# Which components exist in each IDF release, and which provide driver/uart.h: `driver` until
# 5.2; esp_driver_uart from 5.3, re-exported by `driver` until 6.0 drops that.
IDF_VERSIONS = ((5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (6, 0), (6, 1))
COMPONENT_SINCE = {"driver": (5, 0), "esp_timer": (5, 0), "esp_driver_uart": (5, 3), "esp_driver_i2c": (5, 3)}


def _uart_providers(version: tuple[int, int]) -> set[str]:
    if version < (5, 3):
        return {"driver"}
    return {"esp_driver_uart"} if version >= (6, 0) else {"esp_driver_uart", "driver"}


def _requirements(main_cmake: Path, version: tuple[int, int], tmp: Path) -> subprocess.CompletedProcess:
    """Run the component's CMakeLists in CMake script mode with IDF's version variables set and
    idf_component_register() recording its PRIV_REQUIRES and REQUIRES."""
    script = tmp / f"idf_{version[0]}_{version[1]}.cmake"
    script.write_text(f"""set(IDF_VERSION_MAJOR {version[0]})
set(IDF_VERSION_MINOR {version[1]})
set(IDF_VERSION_PATCH 0)
set(CMAKE_CURRENT_SOURCE_DIR "{main_cmake.parent}")
function(idf_component_register)
    cmake_parse_arguments(arg "" "" "SRCS;INCLUDE_DIRS;REQUIRES;PRIV_REQUIRES" ${{ARGN}})
    message(STATUS "requires: ${{arg_REQUIRES}};${{arg_PRIV_REQUIRES}}")
endfunction()
include("{main_cmake}")
""")
    return subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, cwd=main_cmake.parent)


@pytest.mark.parametrize("runtime", ["native", "tflm"])
def test_esp_idf_requirements_follow_the_idf_version(renders: dict, runtime: str, tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    main_cmake = renders["esp32-s3-devkitc-1", runtime] / "main" / "CMakeLists.txt"
    for version in IDF_VERSIONS:
        proc = _requirements(main_cmake, version, tmp_path)
        assert proc.returncode == 0, proc.stderr
        line = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if "requires:" in ln)
        required = {c for c in line.split("requires:")[1].strip().split(";") if c}
        for component in required & set(COMPONENT_SINCE):
            assert version >= COMPONENT_SINCE[component], f"IDF {version} has no {component}"
        assert required & _uart_providers(version), f"IDF {version}: nothing provides driver/uart.h in {required}"
        assert "esp_timer" in required
    too_old = _requirements(main_cmake, (5, 0), tmp_path)
    assert too_old.returncode != 0 and "5.1" in too_old.stderr


@pytest.mark.parametrize("board_name", ESP_BOARDS)
def test_sdkconfig_sets_flash_size_and_clock_from_the_board(renders: dict, board_name: str) -> None:
    board = load_board(board_name)
    text = (renders[board_name, "native"] / "sdkconfig.defaults").read_text()
    assert f"CONFIG_ESPTOOLPY_FLASHSIZE_{board.flash_bytes >> 20}MB=y" in text
    mhz = board.hardware["clock_hz"] // 1_000_000
    assert f"CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_{mhz}=y" in text
    assert f"at {mhz} MHz" in board.description  # the board file says what the firmware runs at
    keys = [ln.split("=")[0] for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(keys) == len(set(keys)) and all(re.fullmatch(r"CONFIG_[A-Z0-9_]+", k) for k in keys)


def test_bad_esp_board_values_are_refused(vib_cnn: Path, tmp_path: Path) -> None:
    source = Path(load_board("esp32-devkitc").source).read_text()
    for old, new, needle in (("flash_bytes = 4194304", "flash_bytes = 3000000", "flash_bytes"),
                             ("clock_hz = 240000000", "clock_hz = 200000000", "clock_hz")):
        board_file = tmp_path / f"bad-{needle}.toml"
        board_file.write_text(source.replace(old, new))
        with pytest.raises(InputError, match=needle):
            render_project(load_board(board_file), int8_model(vib_cnn), tmp_path / f"fw-{needle}")
        assert not (tmp_path / f"fw-{needle}").exists()


def test_usb_ids_name_the_port_the_protocol_is_on() -> None:
    """The S3 and C3 serve the protocol on UART0, behind the USB-UART bridge, never on the chip's
    own USB Serial/JTAG (303a:1001); the Pico serves it on the SDK's USB CDC (2e8a:000a)."""
    for name in ("esp32-s3-devkitc-1", "esp32-c3-devkitm-1"):
        ids = load_board(name).usb_vid_pid
        assert ids and "303a:1001" not in ids
    assert load_board("rpi-pico").usb_vid_pid[0] == "2e8a:000a"


def _esp_compile_sets(project: Path) -> list[list[str]]:
    sets = [[level, IDF_C_STD["5.x"]] for level in IDF_LEVELS] + [["-Og", IDF_C_STD["6.x"]]]
    return sets + [["-Og", IDF_C_STD["5.x"], "-DTINYML_RUN_MODE=1"], ["-Og", IDF_C_STD["5.x"], "-DTINYML_EEMBC=1"]]


@pytest.mark.parametrize("board_name", ESP_BOARDS)
@pytest.mark.parametrize("runtime", ["native", "tflm"])
def test_esp_idf_c_files_compile_for_the_core(renders: dict, board_name: str, runtime: str, tmp_path: Path) -> None:
    project = renders[board_name, runtime]
    sdk = _write_headers(tmp_path / "sdk", IDF_HEADERS)
    sources = sorted((project / "main").glob("*.c"))
    assert {"port.c", "tinyml_app.c", "tinyml_proto.c"} <= {s.name for s in sources}
    board = load_board(board_name)
    for flags in _esp_compile_sets(project):
        compile_c(BOARD_ISA[board_name], sources, *flags, *IDF_FLAGS, "-I", str(sdk), "-I", str(project / "main"),
                  cwd=tmp_path)
    assert board.idf_target in (project / "sdkconfig.defaults").read_text()


@pytest.mark.parametrize("board_name", ["esp32-s3-devkitc-1", "esp32-c3-devkitm-1"])
def test_tflm_model_cc_compiles_against_tflm_api(renders: dict, board_name: str, tmp_path: Path) -> None:
    project = renders[board_name, "tflm"]
    cxx = ISA_FLAGS[BOARD_ISA[board_name]]
    compiler = cxx[0].replace("-gcc", "-g++")
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    sdk = _write_headers(tmp_path / "sdk", TFLM_HEADERS)
    proc = subprocess.run([compiler, *cxx[1:], "-std=gnu++20", "-fno-exceptions", "-fno-rtti", "-Og",
                           *IDF_FLAGS, *WARNINGS, "-I", str(sdk), "-I", str(project / "main"), "-c",
                           str(project / "main" / "tflm_model.cc")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    model_cc = (project / "main" / "tflm_model.cc").read_text()
    assert 'extern "C" int tinyml_model_init(void)' in model_cc


# ---- the TFLM arena on each ESP target --------------------------------------------------------

def test_s3_arena_holds_esp_nn_conv_scratch(vib_cnn: Path, renders: dict) -> None:
    """vib_cnn's three convolutions on the S3: what esp-nn's size function asks, worked by hand
    for this model from esp-nn 1.1.1 (filter with 16-padded channels, padded input, per-channel
    words) and from 1.2.3 (plus 16-byte filter rows, trailing padding and a larger alignment
    margin). The bound must cover both; the ESP32 and C3 (generic kernels) take no conv scratch."""
    requests = esp_nn.scratch_requests(vib_cnn.read_bytes(), "esp32s3")
    convs = [r.nbytes for r in requests if r.opcode == "CONV_2D"]
    v1_1_1, v1_2_3 = (1740, 1904, 1568), (2814, 3248, 3040)
    assert len(convs) == 3 and all(c >= max(a, b) for c, a, b in zip(convs, v1_1_1, v1_2_3, strict=True))
    assert [r.nbytes for r in requests if r.opcode == "SOFTMAX"] == [4 * 3]  # one int32 per class
    for target in ("esp32", "esp32c3"):
        assert [r.opcode for r in esp_nn.scratch_requests(vib_cnn.read_bytes(), target)] == ["SOFTMAX"]
    arenas = {}
    for board in ESP_BOARDS:
        model_cc = (renders[board, "tflm"] / "main" / "tflm_model.cc").read_text()
        arenas[board] = int(re.search(r"kArenaBytes = (\d+);", model_cc).group(1))
        host = int(re.search(r"accepts \((\d+) bytes\)", model_cc).group(1))
        assert arenas[board] >= host + esp_nn.scratch_arena_bytes(vib_cnn.read_bytes(), load_board(board).idf_target)
    assert arenas["esp32-s3-devkitc-1"] >= arenas["esp32-devkitc"] + sum(convs)
    yml = (renders["esp32-s3-devkitc-1", "tflm"] / "main" / "idf_component.yml").read_text()
    assert f'espressif/esp-nn: "{esp_nn.ESP_NN_VERSIONS}"' in yml and 'idf: ">=5.1"' in yml


# Shapes worked by hand through esp-nn's S3 size functions, 1.1.1 and 1.2.3 (the larger of the
# two): (in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, (pad_h, pad_w, after_h, after_w)) -> bytes.
CONV_CASES = [
    ((8, 8, 12, 1, 1, 8, 8, 16, (0, 0, 0, 0)), 1600),      # 1x1: 8-padded input, filter, transpose buffer
    ((28, 28, 1, 5, 5, 28, 28, 8, (2, 2, 4, 4)), 416),     # 1.2.3's im2col path (short filter rows)
    ((1, 64, 8, 1, 5, 1, 32, 16, (0, 1, 0, 4)), 3248),     # vib_cnn's second conv
]
DEPTHWISE_CASES = [  # (..., channel multiplier instead of out_c)
    ((16, 16, 16, 3, 3, 16, 16, 1, (1, 1, 2, 2)), 5344),   # 3x3, channels % 16 == 0, padded input copy
    ((8, 8, 8, 3, 3, 6, 6, 1, (0, 0, 0, 0)), 1200),        # 8 channels: int16 filter and input
    ((10, 10, 5, 3, 3, 10, 10, 1, (1, 1, 2, 2)), 2656),    # 5 channels padded to 8, aligned sub-buffers
    ((8, 8, 3, 3, 3, 6, 6, 4, (0, 0, 0, 0)), 632),         # multiplier 4
]


@pytest.mark.parametrize(("shape", "esp_nn_bytes"), CONV_CASES)
def test_conv_scratch_bound_covers_esp_nn(shape: tuple, esp_nn_bytes: int) -> None:
    in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, pad = shape
    assert esp_nn._conv_s3(in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, pad) >= esp_nn_bytes


@pytest.mark.parametrize(("shape", "esp_nn_bytes"), DEPTHWISE_CASES)
def test_depthwise_scratch_bound_covers_esp_nn(shape: tuple, esp_nn_bytes: int) -> None:
    in_h, in_w, in_c, k_h, k_w, out_h, out_w, mult, pad = shape
    assert esp_nn._depthwise_s3(in_h, in_w, in_c, mult, k_h, k_w, out_h, out_w, pad) >= esp_nn_bytes


def test_depthwise_model_asks_scratch_on_the_s3_only() -> None:
    from tests.codegen_models import build

    tflite, _ = build("depthwise")  # 8x8x3, multiplier 2, 3x3 SAME: esp-nn's fallback asks 32 bytes
    s3 = [r for r in esp_nn.scratch_requests(tflite, "esp32s3") if r.opcode == "DEPTHWISE_CONV_2D"]
    assert len(s3) == 1 and s3[0].nbytes >= 32
    assert not [r for r in esp_nn.scratch_requests(tflite, "esp32") if r.opcode == "DEPTHWISE_CONV_2D"]


def _frames(data: bytes) -> list[p.Message]:
    decoder = p.Decoder()
    return [m for m in decoder.feed(data) if not isinstance(m, (p.Text, p.BadFrame))]


def test_arena_failure_is_reported_in_hello(renders: dict, vib_cnn: Path, tmp_path: Path) -> None:
    """The application of a TFLM project, built for this host with a runtime whose arena
    allocation fails, announces it in HELLO (at boot and on HELLO_REQ) and answers INFER with
    ERROR 5; the host's validation refuses such a device."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    main = renders["esp32-s3-devkitc-1", "tflm"] / "main"
    (tmp_path / "host_port.c").write_text("""#include <stdlib.h>
#include <unistd.h>
#include "tinyml_app.h"
#include "tinyml_port.h"
void port_init(void) {}
void port_write(const uint8_t *data, size_t len) { if (write(1, data, len) != (ssize_t)len) exit(3); }
int port_read_byte(void) { unsigned char c; if (read(0, &c, 1) != 1) exit(0); return c; }
void port_idle(void) {}
uint32_t port_latency_counter(void) { return 0; }
uint32_t port_millis(void) { return 0; }
uint32_t port_boot_id(void) { return 7; }
void port_exit(int code) { exit(code); }
int tinyml_model_init(void) { return 1; } /* AllocateTensors failed */
int tinyml_model_invoke(const int8_t *input, int8_t *output) { (void)input; (void)output; return 1; }
int main(void) { return tinyml_main(); }
""")
    exe = tmp_path / "app"
    sources = [main / n for n in ("tinyml_app.c", "tinyml_capture.c", "tinyml_proto.c", "tinyml_run.c",
                                  "tinyml_sensor.c")]
    host_compile([tmp_path / "host_port.c", *sources], exe, includes=[main], libs=["-lm"],
                 flags=("-std=gnu17", *WARNINGS, "-Wno-unused-parameter"))
    run = subprocess.run([str(exe)], input=p.encode(p.HelloReq()) + p.encode(p.Infer(1)), capture_output=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    messages = _frames(run.stdout)
    hellos = [m for m in messages if isinstance(m, p.Hello)]
    assert len(hellos) == 2 and all(h.arena_bytes == p.ARENA_FAILED for h in hellos)
    errors = [m for m in messages if isinstance(m, p.Error)]
    assert [e.code for e in errors] == [p.ERR_INFERENCE]
    with pytest.raises(CheckFailed, match="arena"):
        check_hello(hellos[0], int8_model(vib_cnn))


# ---- Pico SDK ---------------------------------------------------------------------------------

def test_pico_serves_usb_cdc_by_default_and_uart_as_an_option(renders: dict, tmp_path: Path) -> None:
    cmake = (renders["rpi-pico", "native"] / "CMakeLists.txt").read_text()
    assert "set(TINYML_SERIAL usb CACHE STRING" in cmake
    usb = cmake[cmake.index('if(TINYML_SERIAL STREQUAL "usb")'):cmake.index('elseif(TINYML_SERIAL STREQUAL "uart")')]
    assert "pico_enable_stdio_usb(tinyml_app 1)" in usb and "TINYML_SERIAL_USB=1" in usb
    assert "pico_enable_stdio_uart(tinyml_app 0)" in cmake
    port = (renders["rpi-pico", "native"] / "src" / "port.c").read_text()
    assert "stdio_put_string((const char *)data, (int)len, false, false)" in port  # raw: no CR insertion


@pytest.mark.parametrize("serial", ["usb", "uart"])
def test_pico_c_files_compile_for_the_core(renders: dict, serial: str, tmp_path: Path) -> None:
    project = renders["rpi-pico", "native"]
    sdk = _write_headers(tmp_path / "sdk", PICO_HEADERS)
    sources = sorted((project / "src").glob("*.c")) + sorted((project / "model").glob("*.c"))
    usb = f"-DTINYML_SERIAL_USB={1 if serial == 'usb' else 0}"
    for level in PICO_LEVELS:
        compile_c("cortex-m0plus", sources, level, usb, *PICO_FLAGS, "-I", str(sdk), "-I", str(project / "src"),
                  "-I", str(project / "model"), cwd=tmp_path)
    for mode in ("-DTINYML_RUN_MODE=1", "-DTINYML_EEMBC=1"):
        compile_c("cortex-m0plus", sources, "-O3", usb, mode, *PICO_FLAGS, "-I", str(sdk), "-I", str(project / "src"),
                  "-I", str(project / "model"), cwd=tmp_path)
