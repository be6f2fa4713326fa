# Cross build for 64-bit ARM Linux (Raspberry Pi 3/4/5 on a 64-bit OS) with Debian's
# gcc-aarch64-linux-gnu. Run the result on the board, or here under qemu-aarch64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Code for the ARMv8.0-A baseline (Cortex-A53 and up); kernels that need more (dot product)
# are compiled per file and chosen at run time from the CPU's features.
set(CMAKE_C_FLAGS_INIT "-march=armv8-a")
