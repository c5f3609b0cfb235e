/* Loads the library named by argv[1] with dlopen() and prints fib(argv[2]) from it. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    long (*fib)(int) = (long (*)(int))dlsym(lib, "fib");
    if (!fib) return 1;
    printf("%ld\n", fib(atoi(argv[2])));
    return 0;
}
