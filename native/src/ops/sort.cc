// TODO(foundation): shape rules and kernels of this family.
#include "ops/common.h"

namespace mnn {

void register_sort_ops() {}

}  // namespace mnn
