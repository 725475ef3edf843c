namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Two or three jobs of the same kind (matrices over one input) as one run of the worker pool: item i goes
/// to the first job's items, then the second's, then the third's, through the same item function.
/// </summary>
internal unsafe struct SharedItems
{
    public delegate*<void*, int, void> Work;
    public void* A, B, C;
    public int ItemsA, ItemsB;

    public static void Item(void* context, int item)
    {
        var shared = (SharedItems*)context;
        if (item < shared->ItemsA)
        {
            shared->Work(shared->A, item);
            return;
        }
        item -= shared->ItemsA;
        if (item < shared->ItemsB) shared->Work(shared->B, item);
        else shared->Work(shared->C, item - shared->ItemsB);
    }
}
