// Internal invariants of the tensors handed to a kernel. The user-facing checks (SPEC
// "Errors") happen once in Python before this point; these only guard the raw-pointer
// contract against a caller that bypassed them.
#pragma once

#include <torch/extension.h>

#define INFDIFF_CHECK_INPUT(t, dtype_)                                              \
  TORCH_CHECK((t).is_contiguous(), #t " must be contiguous");                      \
  TORCH_CHECK((t).scalar_type() == (dtype_), #t " has dtype ", (t).scalar_type(), \
              ", expected ", (dtype_))

#define INFDIFF_CHECK_SAME_DEVICE(a, b) \
  TORCH_CHECK((a).device() == (b).device(), #a " and " #b " must be on the same device")
