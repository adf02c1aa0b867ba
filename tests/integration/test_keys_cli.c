/* placeholder: skipped until written */
#include "config.h"

int main(void)
{
    return 77;
}
