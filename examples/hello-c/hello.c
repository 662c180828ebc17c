#include <stdio.h>

int main(void) {
  puts("hello from layerfarm");
  return 0;
}
