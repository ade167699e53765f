from e2e_support import all_in_one

__all__ = ["all_in_one"]
