"""Builds the C runtime's Python extension (ddq_edge._runtime) with the project's one CMake
build (runtime/CMakeLists.txt); everything else is declared in pyproject.toml."""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str, source_dir: Path) -> None:
        super().__init__(name, sources=[])
        self.source_dir = source_dir


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        build_dir = Path(self.build_temp).resolve() / "runtime"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ext.source_dir), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release", "-DDDQ_PYTHON=ON", "-DDDQ_TOOLS=OFF", "-DDDQ_TESTS=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={target.parent}",
        ]
        subprocess.run(configure, check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "_runtime", "-j", jobs], check=True)
        if not target.exists():
            raise RuntimeError(f"the CMake build did not produce {target}")


setup(
    ext_modules=[CMakeExtension("ddq_edge._runtime", ROOT / "runtime")],
    cmdclass={"build_ext": CMakeBuild},
)
