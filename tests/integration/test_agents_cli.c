/* Placeholder (replaced by its author). */
int main(void)
{
    return 77;
}
